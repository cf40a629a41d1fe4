// Berth's TLS warm-up for ActiveMQ (a -javaagent; see images/README.md).
//
// A standby broker waits for the shared store's lock with a cold JVM: when it takes over,
// the first TLS handshake of every client runs the JVM's TLS and crypto code for the
// first time, interpreted, and took 1.4-1.5 s here, most of the failover gap. Once the
// broker has waited for the lock for a while (a standby whose active serves; not while
// the pair boots, where the CPU is the active's), this agent runs in-memory TLS
// handshakes with the broker's own keystore, so that code is loaded and compiled before
// the first client arrives. A broker that gets the lock at once does nothing, and the
// handshakes stop as soon as the broker gets the lock (a takeover needs the CPU and the
// JIT more). It touches no socket, no file but its properties and the keystore, and no
// broker state, and stops after a fixed number of handshakes.
//
// Argument: path of a properties file with `keystore`, `password` and optionally
// `rounds` and `standby_ms` (written by Berth's agent, readable by the broker's user
// only).
package berth;

import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.util.Enumeration;
import java.util.Map;
import java.util.Properties;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.TrustManagerFactory;

public final class BerthTlsWarmup {
    private BerthTlsWarmup() {}

    /** The class whose start() a broker waiting for the store's lock sits in. */
    static final String LOCKER = "org.apache.activemq.store.SharedFileLocker";
    /** Threads a broker that serves runs (its transport connectors' acceptors). */
    static final String ACCEPTOR = "ActiveMQ Transport Server";

    public static void premain(String args) {
        Thread t = new Thread(() -> {
            try {
                Properties p = properties(args);
                long standbyMs = Long.parseLong(p.getProperty("standby_ms", "5000"));
                if (awaitStandby(standbyMs)) run(p);
            } catch (Exception e) {
                System.err.println("berth-tls-warmup: skipped: " + e);
            }
        }, "berth-tls-warmup");
        t.setDaemon(true);
        t.start();
    }

    /**
     * Waits until some thread of this JVM has been inside the shared-file locker for
     * `standbyMs` in a row (the broker is a standby); false as soon as the broker's
     * connectors run (it got the lock: nothing to prepare).
     */
    static boolean awaitStandby(long standbyMs) throws InterruptedException {
        boolean counting = false;
        long since = 0;
        while (true) {
            Thread.sleep(250);
            if (serving()) return false;
            boolean waiting = waitingForLock();
            long now = System.nanoTime();
            if (!waiting) {
                counting = false;
            } else if (!counting) {
                counting = true;
                since = now;
            } else if (now - since >= standbyMs * 1_000_000L) {
                return true;
            }
        }
    }

    /** Whether some thread of this JVM is inside the shared-file locker. */
    static boolean waitingForLock() {
        for (StackTraceElement[] stack : Thread.getAllStackTraces().values()) {
            for (StackTraceElement f : stack) {
                if (LOCKER.equals(f.getClassName())) return true;
            }
        }
        return false;
    }

    /** Whether the broker's transport connectors run (it holds the lock). */
    static boolean serving() {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith(ACCEPTOR)) return true;
        }
        return false;
    }

    static Properties properties(String path) throws Exception {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(Path.of(path))) {
            p.load(in);
        }
        return p;
    }

    /** Runs the handshakes at once (for trying the agent outside a broker). */
    public static void main(String[] args) throws Exception {
        run(properties(args.length > 0 ? args[0] : ""));
    }

    static void run(Properties p) {
        try {
            char[] password = p.getProperty("password", "").toCharArray();
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(p.getProperty("keystore"))) {
                ks.load(in, password);
            }
            // The client trusts the broker's own certificate chain.
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int n = 0;
            for (Enumeration<String> e = ks.aliases(); e.hasMoreElements(); ) {
                Certificate[] chain = ks.getCertificateChain(e.nextElement());
                if (chain == null) continue;
                for (Certificate c : chain) trust.setCertificateEntry("c" + n++, c);
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, password);
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext server = SSLContext.getInstance("TLS");
            server.init(kmf.getKeyManagers(), null, null);
            SSLContext client = SSLContext.getInstance("TLS");
            client.init(null, tmf.getTrustManagers(), null);
            int rounds = Integer.parseInt(p.getProperty("rounds", "150"));
            long started = System.nanoTime();
            long first = 0, last = 0;
            int done = 0;
            // A takeover that starts meanwhile needs the CPU (and the JIT) more: stop.
            while (done < rounds && waitingForLock()) {
                long t0 = System.nanoTime();
                handshake(server, client);
                last = System.nanoTime() - t0;
                if (done == 0) first = last;
                done++;
            }
            System.err.printf("berth-tls-warmup: %d handshakes in %d ms (first %d ms, last %d ms)%s%n",
                    done, (System.nanoTime() - started) / 1_000_000, first / 1_000_000, last / 1_000_000,
                    done < rounds ? "; stopped: the broker got the lock" : "");
        } catch (Exception e) {
            System.err.println("berth-tls-warmup: skipped: " + e);
        }
    }

    /** One full handshake between two engines in memory, then a record each way. */
    static void handshake(SSLContext server, SSLContext client) throws Exception {
        SSLEngine s = server.createSSLEngine();
        s.setUseClientMode(false);
        SSLEngine c = client.createSSLEngine("localhost", 0);
        c.setUseClientMode(true);
        int size = Math.max(s.getSession().getPacketBufferSize(), c.getSession().getPacketBufferSize());
        int app = Math.max(s.getSession().getApplicationBufferSize(), c.getSession().getApplicationBufferSize());
        // A wrap wants a whole packet's room free; a flight is a few records.
        ByteBuffer c2s = ByteBuffer.allocate(8 * size), s2c = ByteBuffer.allocate(8 * size);
        ByteBuffer sIn = ByteBuffer.allocate(app), cIn = ByteBuffer.allocate(app);
        ByteBuffer empty = ByteBuffer.allocate(0);
        c.beginHandshake();
        s.beginHandshake();
        for (int step = 0; step < 200 && !(done(c) && done(s)); step++) {
            pump(c, empty, c2s, s2c, cIn);
            pump(s, empty, s2c, c2s, sIn);
        }
        if (!(done(c) && done(s))) throw new IllegalStateException("handshake did not finish");
        c.wrap(ByteBuffer.wrap("ping".getBytes()), c2s);
        c2s.flip();
        s.unwrap(c2s, sIn);
        c2s.compact();
    }

    static boolean done(SSLEngine e) {
        HandshakeStatus h = e.getHandshakeStatus();
        return h == HandshakeStatus.NOT_HANDSHAKING || h == HandshakeStatus.FINISHED;
    }

    /** Moves an engine one step: run tasks, unwrap what the peer sent, wrap what it owes. */
    static void pump(SSLEngine e, ByteBuffer empty, ByteBuffer out, ByteBuffer in, ByteBuffer appIn)
            throws Exception {
        Runnable task;
        while ((task = e.getDelegatedTask()) != null) task.run();
        in.flip();
        while (in.hasRemaining() && e.getHandshakeStatus() == HandshakeStatus.NEED_UNWRAP) {
            if (e.unwrap(in, appIn).bytesConsumed() == 0) break;
            while ((task = e.getDelegatedTask()) != null) task.run();
        }
        in.compact();
        while (e.getHandshakeStatus() == HandshakeStatus.NEED_WRAP) {
            if (e.wrap(empty, out).getStatus() != javax.net.ssl.SSLEngineResult.Status.OK) break;
            while ((task = e.getDelegatedTask()) != null) task.run();
        }
    }
}
