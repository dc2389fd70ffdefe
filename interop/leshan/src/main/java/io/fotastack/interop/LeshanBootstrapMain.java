package io.fotastack.interop;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.eclipse.leshan.core.request.BootstrapDownlinkRequest;
import org.eclipse.leshan.core.request.BootstrapRequest;
import org.eclipse.leshan.core.request.Identity;
import org.eclipse.leshan.core.response.LwM2mResponse;
import org.eclipse.leshan.server.bootstrap.BootstrapConfig;
import org.eclipse.leshan.server.bootstrap.BootstrapFailureCause;
import org.eclipse.leshan.server.bootstrap.BootstrapSession;
import org.eclipse.leshan.server.bootstrap.BootstrapSessionAdapter;
import org.eclipse.leshan.server.bootstrap.InMemoryBootstrapConfigStore;
import org.eclipse.leshan.server.californium.bootstrap.LeshanBootstrapServer;
import org.eclipse.leshan.server.californium.bootstrap.LeshanBootstrapServerBuilder;
import org.eclipse.leshan.server.security.BootstrapSecurityStore;
import org.eclipse.leshan.server.security.SecurityInfo;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

/**
 * A Leshan bootstrap server (LeshanBootstrapServer of leshan-server-cf) for the interop tests,
 * because the registry serves no Leshan bootstrap server demo. Configurations and bootstrap
 * credentials are added over HTTP, shaped as the Leshan demos take them:
 *
 * <pre>
 * PUT /api/bootstrap/{endpoint}   a BootstrapConfig as JSON (Leshan's own class, read by Gson)
 * GET /api/bootstrap              all configurations
 * PUT /api/security/clients       {"endpoint":..,"psk":{"identity":..,"key":"hex"}}
 *
 * java -cp 'target/classes:target/lib/*' io.fotastack.interop.LeshanBootstrapMain \
 *     -lh 127.0.0.1 -lp COAP_PORT -slp COAPS_PORT -wp HTTP_PORT
 * </pre>
 *
 * Each bootstrap session prints a line on stdout (BS_AUTHORIZED, BS_UNAUTHORIZED, BS_END,
 * BS_FAILED). The HTTP server listens on the same host as CoAP (127.0.0.1 in the tests).
 */
public class LeshanBootstrapMain {

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        String host = opt.getOrDefault("-lh", "127.0.0.1");
        int coapPort = Integer.parseInt(opt.getOrDefault("-lp", "5783"));
        int coapsPort = Integer.parseInt(opt.getOrDefault("-slp", "5784"));
        int webPort = Integer.parseInt(opt.getOrDefault("-wp", "8081"));

        InMemoryBootstrapConfigStore configs = new InMemoryBootstrapConfigStore();
        PskStore psks = new PskStore();
        LeshanBootstrapServerBuilder builder = new LeshanBootstrapServerBuilder();
        builder.setLocalAddress(host, coapPort);
        builder.setLocalSecureAddress(host, coapsPort);
        builder.setConfigStore(configs);
        builder.setSecurityStore(psks);
        LeshanBootstrapServer bs = builder.build();
        bs.addListener(new BootstrapSessionAdapter() {
            @Override
            public void unAuthorized(BootstrapRequest request, Identity identity) {
                LeshanClientMain.say("BS_UNAUTHORIZED " + request.getEndpointName());
            }

            @Override
            public void authorized(BootstrapSession session) {
                LeshanClientMain.say("BS_AUTHORIZED " + session.getEndpoint());
            }

            @Override
            public void onResponseError(BootstrapSession session,
                    BootstrapDownlinkRequest<? extends LwM2mResponse> request, LwM2mResponse response) {
                LeshanClientMain.say("BS_RESPONSE_ERROR " + session.getEndpoint() + " " + request + " " + response);
            }

            @Override
            public void end(BootstrapSession session) {
                LeshanClientMain.say("BS_END " + session.getEndpoint());
            }

            @Override
            public void failed(BootstrapSession session, BootstrapFailureCause cause) {
                LeshanClientMain.say("BS_FAILED " + session.getEndpoint() + " " + cause);
            }
        });
        bs.start();

        Gson gson = new Gson();
        HttpServer http = HttpServer.create(new InetSocketAddress(host, webPort), 16);
        http.createContext("/api/bootstrap", ex -> {
            try {
                String path = ex.getRequestURI().getPath();
                String ep = path.length() > "/api/bootstrap/".length()
                        ? path.substring("/api/bootstrap/".length()) : "";
                switch (ex.getRequestMethod()) {
                case "GET":
                    reply(ex, 200, gson.toJson(configs.getAll()));
                    break;
                case "PUT":
                case "POST":
                    if (ep.isEmpty()) {
                        reply(ex, 400, "{\"error\":\"no endpoint in the path\"}");
                        break;
                    }
                    BootstrapConfig cfg = gson.fromJson(body(ex), BootstrapConfig.class);
                    configs.add(ep, cfg);
                    reply(ex, 200, gson.toJson(cfg));
                    break;
                case "DELETE":
                    configs.remove(ep);
                    reply(ex, 200, "{}");
                    break;
                default:
                    reply(ex, 405, "{}");
                }
            } catch (Exception e) {
                reply(ex, 400, gson.toJson(e.toString()));
            }
        });
        http.createContext("/api/security/clients", ex -> {
            try {
                if (!"PUT".equals(ex.getRequestMethod())) {
                    reply(ex, 405, "{}");
                    return;
                }
                JsonObject o = gson.fromJson(body(ex), JsonObject.class);
                JsonObject psk = o.getAsJsonObject("psk");
                SecurityInfo info = SecurityInfo.newPreSharedKeyInfo(o.get("endpoint").getAsString(),
                        psk.get("identity").getAsString(), LeshanClientMain.hex(psk.get("key").getAsString()));
                psks.put(info);
                reply(ex, 200, "{}");
            } catch (Exception e) {
                reply(ex, 400, gson.toJson(e.toString()));
            }
        });
        http.start();
        LeshanClientMain.say("BS_STARTED coap " + bs.getUnsecuredAddress() + " coaps " + bs.getSecuredAddress()
                + " http " + http.getAddress());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            http.stop(0);
            bs.destroy();
        }));
    }

    static String body(HttpExchange ex) throws IOException {
        try (InputStream in = ex.getRequestBody()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            in.transferTo(out);
            return out.toString(StandardCharsets.UTF_8);
        }
    }

    static void reply(HttpExchange ex, int code, String json) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }

    /** Bootstrap PSKs in memory, by endpoint and by identity. */
    static class PskStore implements BootstrapSecurityStore {
        private final Map<String, SecurityInfo> byEndpoint = new ConcurrentHashMap<>();
        private final Map<String, SecurityInfo> byIdentity = new ConcurrentHashMap<>();

        void put(SecurityInfo info) {
            byEndpoint.put(info.getEndpoint(), info);
            byIdentity.put(info.getIdentity(), info);
        }

        @Override
        public Iterator<SecurityInfo> getAllByEndpoint(String endpoint) {
            List<SecurityInfo> l = new ArrayList<>();
            SecurityInfo i = byEndpoint.get(endpoint);
            if (i != null) {
                l.add(i);
            }
            return l.iterator();
        }

        @Override
        public SecurityInfo getByIdentity(String identity) {
            return byIdentity.get(identity);
        }
    }
}
