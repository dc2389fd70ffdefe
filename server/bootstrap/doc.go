// Package bootstrap is the LwM2M bootstrap server (LwM2M Core 5.2, 6.1): it
// answers Bootstrap-Request and Bootstrap-Pack-Request on listeners of its
// own, checks the device's bootstrap identity, and writes the device the
// configuration stored for its endpoint (Security, Server and Access
// Control instances) before Bootstrap-Finish. Configurations and bootstrap
// credentials are kept through store.BootstrapStore; a PSK generated for a
// device's DM account is entered in the DM server's security store in the
// same step (PutConfig).
package bootstrap
