package io.fotastack.interop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.eclipse.leshan.client.californium.LeshanClient;
import org.eclipse.leshan.client.californium.LeshanClientBuilder;
import org.eclipse.leshan.client.object.Security;
import org.eclipse.leshan.client.object.Server;
import org.eclipse.leshan.client.observer.LwM2mClientObserverAdapter;
import org.eclipse.leshan.client.resource.ObjectsInitializer;
import org.eclipse.leshan.client.servers.ServerIdentity;
import org.eclipse.leshan.core.LwM2mId;
import org.eclipse.leshan.core.ResponseCode;
import org.eclipse.leshan.core.request.BootstrapRequest;
import org.eclipse.leshan.core.request.DeregisterRequest;
import org.eclipse.leshan.core.request.RegisterRequest;
import org.eclipse.leshan.core.request.UpdateRequest;

/**
 * A Leshan client (leshan-client-cf) for the interop tests, because the registry serves no Leshan
 * client demo. It registers (or bootstraps first) with the server given on the command line and
 * prints one line per event on stdout; stdin takes the commands "update", "stop" (de-register) and
 * "quit". The PSK key is read from the environment (LESHAN_PSK_KEY, hex), never from the command
 * line.
 *
 * <pre>
 * java -cp 'target/classes:target/lib/*' io.fotastack.interop.LeshanClientMain \
 *     -n ENDPOINT (-u coap[s]://HOST:PORT | -b coap[s]://HOST:PORT) [-i PSK_IDENTITY] [-l LIFETIME]
 *     [-c CLIENT_CERT.der -k CLIENT_KEY.pkcs8.der -s SERVER_CERT.der]   (X.509 instead of PSK)
 * </pre>
 */
public class LeshanClientMain {

    static void say(String line) {
        synchronized (System.out) {
            System.out.println(line);
            System.out.flush();
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        String ep = opt.get("-n");
        String serverURI = opt.get("-u");
        String bootstrapURI = opt.get("-b");
        String pskId = opt.get("-i");
        String keyHex = System.getenv("LESHAN_PSK_KEY");
        long lifetime = Long.parseLong(opt.getOrDefault("-l", "300"));
        if (ep == null || (serverURI == null) == (bootstrapURI == null)) {
            System.err.println("usage: LeshanClientMain -n ENDPOINT (-u URI | -b URI) [-i PSK_ID] [-l LIFETIME]; key in $LESHAN_PSK_KEY");
            System.exit(2);
        }
        byte[] key = keyHex == null ? null : hex(keyHex);

        ObjectsInitializer init = new ObjectsInitializer();
        if (bootstrapURI != null) {
            init.setInstancesForObject(LwM2mId.SECURITY, pskId != null
                    ? Security.pskBootstrap(bootstrapURI, pskId.getBytes(StandardCharsets.UTF_8), key)
                    : Security.noSecBootstap(bootstrapURI));
            init.setClassForObject(LwM2mId.SERVER, Server.class);
        } else {
            Security sec;
            if (opt.containsKey("-c")) {
                // X.509: our certificate (DER), our private key (PKCS#8 DER) and the server's
                // certificate (DER), each from a file.
                sec = Security.x509(serverURI, 123, readFile(opt.get("-c")), readFile(opt.get("-k")),
                        readFile(opt.get("-s")));
            } else if (pskId != null) {
                sec = Security.psk(serverURI, 123, pskId.getBytes(StandardCharsets.UTF_8), key);
            } else {
                sec = Security.noSec(serverURI, 123);
            }
            init.setInstancesForObject(LwM2mId.SECURITY, sec);
            init.setInstancesForObject(LwM2mId.SERVER, new Server(123, lifetime));
        }
        TestDevice device = new TestDevice(ep);
        init.setInstancesForObject(LwM2mId.DEVICE, device);

        LeshanClientBuilder builder = new LeshanClientBuilder(ep);
        builder.setLocalAddress("127.0.0.1", 0);
        builder.setObjects(init.create(LwM2mId.SECURITY, LwM2mId.SERVER, LwM2mId.DEVICE));
        LeshanClient client = builder.build();
        client.addObserver(new LwM2mClientObserverAdapter() {
            @Override
            public void onBootstrapSuccess(ServerIdentity bsserver, BootstrapRequest request) {
                say("BOOTSTRAP_SUCCESS");
            }

            @Override
            public void onBootstrapFailure(ServerIdentity bsserver, BootstrapRequest request, ResponseCode code,
                    String msg, Exception e) {
                say("BOOTSTRAP_FAILURE " + code + " " + msg);
            }

            @Override
            public void onBootstrapTimeout(ServerIdentity bsserver, BootstrapRequest request) {
                say("BOOTSTRAP_TIMEOUT");
            }

            @Override
            public void onRegistrationSuccess(ServerIdentity server, RegisterRequest request, String id) {
                say("REGISTERED " + id + " " + server.getUri());
            }

            @Override
            public void onRegistrationFailure(ServerIdentity server, RegisterRequest request, ResponseCode code,
                    String msg, Exception e) {
                say("REGISTRATION_FAILURE " + code + " " + (e != null ? e.getClass().getSimpleName() : msg));
            }

            @Override
            public void onRegistrationTimeout(ServerIdentity server, RegisterRequest request) {
                say("REGISTRATION_TIMEOUT");
            }

            @Override
            public void onUpdateSuccess(ServerIdentity server, UpdateRequest request) {
                say("UPDATED");
            }

            @Override
            public void onUpdateFailure(ServerIdentity server, UpdateRequest request, ResponseCode code, String msg,
                    Exception e) {
                say("UPDATE_FAILURE " + code);
            }

            @Override
            public void onDeregistrationSuccess(ServerIdentity server, DeregisterRequest request) {
                say("DEREGISTERED");
            }

            @Override
            public void onDeregistrationFailure(ServerIdentity server, DeregisterRequest request, ResponseCode code,
                    String msg, Exception e) {
                say("DEREGISTRATION_FAILURE " + code);
            }

            @Override
            public void onUnexpectedError(Throwable t) {
                say("ERROR " + t);
            }
        });

        ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "battery");
            t.setDaemon(true);
            return t;
        });
        ticker.scheduleAtFixedRate(device::tick, 500, 500, TimeUnit.MILLISECONDS);

        client.start();
        say("STARTED " + ep);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            switch (line.trim()) {
            case "update":
                client.triggerRegistrationUpdate();
                break;
            case "stop":
                client.stop(true);
                say("STOPPED");
                break;
            case "quit":
                client.destroy(true);
                say("QUIT");
                System.exit(0);
                break;
            default:
                say("UNKNOWN " + line);
            }
        }
        client.destroy(true);
        System.exit(0);
    }

    static byte[] readFile(String path) throws java.io.IOException {
        return java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(path));
    }

    static byte[] hex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }

    /**
     * The Device object (/3/0): read-only identity, writable UTC Offset and Timezone, Reboot that
     * only reports, and a Battery Level that changes every 500 ms so that observations notify.
     */
    public static class TestDevice extends org.eclipse.leshan.client.resource.BaseInstanceEnabler {
        private static final List<Integer> RESOURCES = Arrays.asList(0, 1, 2, 3, 4, 9, 11, 13, 14, 15, 16);
        private final String serial;
        private int battery = 50;
        private String utcOffset = "+01:00";
        private String timezone = "Europe/Berlin";

        public TestDevice() {
            this("unknown");
        }

        TestDevice(String serial) {
            this.serial = serial;
        }

        synchronized void tick() {
            battery = battery >= 100 ? 1 : battery + 1;
            fireResourcesChange(9);
        }

        @Override
        public synchronized org.eclipse.leshan.core.response.ReadResponse read(ServerIdentity identity, int id) {
            switch (id) {
            case 0:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, "Eclipse Leshan");
            case 1:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, "leshan-client-cf");
            case 2:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, serial);
            case 3:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, "1.0.0");
            case 9:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, (long) battery);
            case 11:
                Map<Integer, Long> errors = new HashMap<>();
                errors.put(0, 0L);
                return org.eclipse.leshan.core.response.ReadResponse.success(id, errors,
                        org.eclipse.leshan.core.model.ResourceModel.Type.INTEGER);
            case 13:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, new java.util.Date());
            case 14:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, utcOffset);
            case 15:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, timezone);
            case 16:
                return org.eclipse.leshan.core.response.ReadResponse.success(id, "U");
            default:
                return super.read(identity, id);
            }
        }

        @Override
        public synchronized org.eclipse.leshan.core.response.WriteResponse write(ServerIdentity identity,
                boolean replace, int id, org.eclipse.leshan.core.node.LwM2mResource value) {
            switch (id) {
            case 14:
                utcOffset = (String) value.getValue();
                fireResourcesChange(id);
                return org.eclipse.leshan.core.response.WriteResponse.success();
            case 15:
                timezone = (String) value.getValue();
                fireResourcesChange(id);
                return org.eclipse.leshan.core.response.WriteResponse.success();
            case 13:
                return org.eclipse.leshan.core.response.WriteResponse.success();
            default:
                return super.write(identity, replace, id, value);
            }
        }

        @Override
        public org.eclipse.leshan.core.response.ExecuteResponse execute(ServerIdentity identity, int id,
                String params) {
            if (id == 4) {
                say("EXECUTED /3/0/4 " + (params == null ? "" : params));
                return org.eclipse.leshan.core.response.ExecuteResponse.success();
            }
            return super.execute(identity, id, params);
        }

        @Override
        public List<Integer> getAvailableResourceIds(org.eclipse.leshan.core.model.ObjectModel model) {
            return new ArrayList<>(RESOURCES);
        }
    }
}
