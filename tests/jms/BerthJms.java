/*
 * BerthJms: the JMS (OpenWire) client of Berth's integration tests.
 *
 *   java -cp <jars>:target/jms BerthJms URL USER PASSWORD MODE [--option value ...]
 *
 * URL is an OpenWire URL (tcp://host:port or ssl://host:port). With ssl:// and `--ca PEM_FILE` the
 * client trusts exactly the certificates in that PEM file (an in-memory KeyStore, no keytool step);
 * without --ca it uses the JVM's default trust (javax.net.ssl.* system properties).
 *
 * Every mode prints exactly one JSON object on one line to stdout (the last line; diagnostics go to
 * stderr) and exits 0 when the mode's check passed, 1 when it did not, 2 on bad usage.
 *
 *   login                                    connect and open a session; {"ok", "error", "security"}
 *   roundtrip                                a persistent message to a fresh queue comes back intact and
 *                                            the queue is then empty; one publish to a fresh topic reaches
 *                                            two subscribers
 *   send --dest Q --count N                  N persistent messages (synchronous sends), int property seq=1..N
 *   receive --dest Q --count N --timeout S   consumes until N distinct seq arrived or nothing came for S s;
 *                                            {"distinct", "received", "duplicates", "max_seq"}
 *   dlq --dest Q [--dlq NAME] [--client-redeliveries K] [--timeout S]
 *                                            one persistent message; a transacted consumer rolls back every
 *                                            delivery until the message is in NAME (default DLQ.Q), or S s
 *                                            (default 120) pass; {"in_dlq", "deliveries", "delivery_counts",
 *                                            "delivery_ms", "seconds", "cause", "original_destination",
 *                                            "after_dlq"}; K (default 0) is the client's own redelivery
 *                                            limit, so by default the broker's policy decides
 *   write-denied --dest Q                    a send to Q must fail with a JMSSecurityException; {"denied"}
 *   produce --dest Q --duration S [--gap-ms G] [--ready-file F]
 *                                            persistent synchronous sends with seq=1,2,… for S s (G ms apart,
 *                                            default 10); a send that returns is acknowledged by the broker.
 *                                            With a failover: URL a send blocks through a failover.
 *                                            {"acked", "max_gap_ms", "gaps"} (gaps: every gap > 250 ms between
 *                                            consecutive acknowledged sends, in ms). --ready-file: created
 *                                            once the first send is acknowledged (consume: once subscribed)
 *   consume --dest Q --idle S [--ready-file F] [--after K]
 *                                            CLIENT_ACK consumer (ack per message) until nothing came for S s;
 *                                            {"received", "distinct", "duplicates", "contiguous" (largest k with
 *                                            K+1..k all seen; K defaults to 0), "max_seq", "max_gap_ms"}
 *
 * Destinations are queue names unless prefixed with "topic://" (or "queue://").
 */

import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.UUID;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.JMSSecurityException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;
import javax.net.ssl.TrustManagerFactory;

import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSslConnectionFactory;
import org.apache.activemq.RedeliveryPolicy;
import org.apache.activemq.command.ActiveMQMessage;

public final class BerthJms {
    /** The result object, printed as one JSON line. */
    private final Map<String, Object> out = new LinkedHashMap<>();
    private final Map<String, String> opts;
    private final String url, user, password, mode;

    private BerthJms(String url, String user, String password, String mode, Map<String, String> opts) {
        this.url = url;
        this.user = user;
        this.password = password;
        this.mode = mode;
        this.opts = opts;
        out.put("mode", mode);
    }

    public static void main(String[] args) {
        // Before any logger exists: the client's INFO lines would only be noise on stderr.
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        if (args.length < 4) {
            System.err.println("usage: BerthJms URL USER PASSWORD MODE [--option value ...]");
            System.exit(2);
        }
        Map<String, String> opts = new HashMap<>();
        for (int i = 4; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                System.err.println("bad option list at: " + args[i]);
                System.exit(2);
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        BerthJms run = new BerthJms(args[0], args[1], args[2], args[3], opts);
        boolean ok;
        try {
            ok = run.dispatch();
        } catch (UsageError e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        } catch (Throwable t) {
            t.printStackTrace();
            run.out.put("error", describe(t));
            run.out.put("security", isSecurity(t));
            ok = false;
        }
        run.out.put("ok", ok);
        System.out.println(toJson(run.out));
        System.out.flush();
        // Client threads (transport, scheduler) must not keep the JVM alive.
        Runtime.getRuntime().halt(ok ? 0 : 1);
    }

    private static final class UsageError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageError(String m) {
            super(m);
        }
    }

    private boolean dispatch() throws Exception {
        switch (mode) {
            case "login":
                return login();
            case "roundtrip":
                return roundtrip();
            case "send":
                return send();
            case "receive":
                return receive();
            case "dlq":
                return dlq();
            case "write-denied":
                return writeDenied();
            case "produce":
                return produce();
            case "consume":
                return consume();
            default:
                throw new UsageError("unknown mode " + mode);
        }
    }

    // ------------------------------------------------------------------ options and connections

    private String opt(String name) {
        String v = opts.get(name);
        if (v == null) throw new UsageError("--" + name + " is required for " + mode);
        return v;
    }

    private String opt(String name, String dflt) {
        return opts.getOrDefault(name, dflt);
    }

    private int intOpt(String name, int dflt) {
        String v = opts.get(name);
        return v == null ? dflt : Integer.parseInt(v);
    }

    private ActiveMQConnectionFactory factory() throws Exception {
        String u = "-".equals(user) ? null : user;
        String p = "-".equals(password) ? null : password;
        ActiveMQConnectionFactory f;
        String ca = opts.get("ca");
        if (ca != null) {
            ActiveMQSslConnectionFactory ssl = new ActiveMQSslConnectionFactory(url);
            ssl.setKeyAndTrustManagers(null, trustManagers(ca), new SecureRandom());
            f = ssl;
            f.setUserName(u);
            f.setPassword(p);
        } else {
            f = new ActiveMQConnectionFactory(u, p, url);
        }
        f.setAlwaysSyncSend(true);
        f.setClientIDPrefix("berth-jms");
        RedeliveryPolicy policy = f.getRedeliveryPolicy();
        policy.setMaximumRedeliveries(intOpt("client-redeliveries", 0));
        policy.setInitialRedeliveryDelay(0);
        policy.setRedeliveryDelay(0);
        return f;
    }

    /** Trust exactly the certificates of a PEM file. */
    private static javax.net.ssl.TrustManager[] trustManagers(String pemFile) throws Exception {
        byte[] pem = Files.readAllBytes(Paths.get(pemFile));
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        int n = 0;
        for (Certificate c : CertificateFactory.getInstance("X.509")
                .generateCertificates(new ByteArrayInputStream(pem))) {
            ks.setCertificateEntry("ca-" + n++, c);
        }
        if (n == 0) throw new IllegalArgumentException("no certificate in " + pemFile);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        return tmf.getTrustManagers();
    }

    private Connection connect() throws Exception {
        Connection c = factory().createConnection();
        c.setExceptionListener(e -> System.err.println("connection exception: " + describe(e)));
        c.start();
        return c;
    }

    private static Destination destination(Session s, String name) throws JMSException {
        if (name.startsWith("topic://")) return s.createTopic(name.substring(8));
        if (name.startsWith("queue://")) return s.createQueue(name.substring(8));
        return s.createQueue(name);
    }

    private static void closeQuietly(Connection c) {
        if (c == null) return;
        try {
            c.close();
        } catch (Exception e) {
            System.err.println("close: " + describe(e));
        }
    }

    // ------------------------------------------------------------------ modes

    private boolean login() throws Exception {
        Connection c = null;
        try {
            c = connect();
            // A session makes the broker answer ConnectionInfo (where authentication happens).
            c.createSession(false, Session.AUTO_ACKNOWLEDGE).close();
            return true;
        } catch (JMSException e) {
            out.put("error", describe(e));
            out.put("security", isSecurity(e));
            return false;
        } finally {
            closeQuietly(c);
        }
    }

    private boolean roundtrip() throws Exception {
        String run = UUID.randomUUID().toString().substring(0, 8);
        Connection c = connect();
        try {
            Session s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
            // Queue: persistent send, receive intact, ack, then empty.
            Destination q = s.createQueue("berth.rt." + run + ".q");
            MessageProducer p = s.createProducer(q);
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            String body = "hello queue " + run;
            p.send(s.createTextMessage(body));
            MessageConsumer qc = s.createConsumer(q);
            Message m = qc.receive(10_000);
            boolean queueOk = m instanceof TextMessage && body.equals(((TextMessage) m).getText())
                    && m.getJMSDeliveryMode() == DeliveryMode.PERSISTENT;
            if (m != null) m.acknowledge();
            boolean empty = qc.receive(300) == null;
            qc.close();
            out.put("queue", queueOk);
            out.put("queue_empty_after_ack", empty);

            // Topic: two subscribers (own connections), one publish.
            Connection c2 = connect();
            try {
                Session s1 = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
                Session s2 = c2.createSession(false, Session.AUTO_ACKNOWLEDGE);
                String topic = "berth.rt." + run + ".t";
                MessageConsumer sub1 = s1.createConsumer(s1.createTopic(topic));
                MessageConsumer sub2 = s2.createConsumer(s2.createTopic(topic));
                String tbody = "hello topic " + run;
                MessageProducer tp = s.createProducer(s.createTopic(topic));
                tp.send(s.createTextMessage(tbody));
                int got = 0;
                for (MessageConsumer sub : new MessageConsumer[] {sub1, sub2}) {
                    Message tm = sub.receive(10_000);
                    if (tm instanceof TextMessage && tbody.equals(((TextMessage) tm).getText())) got++;
                }
                out.put("topic_subscribers_reached", got);
                return queueOk && empty && got == 2;
            } finally {
                closeQuietly(c2);
            }
        } finally {
            closeQuietly(c);
        }
    }

    private boolean send() throws Exception {
        String dest = opt("dest");
        int count = Integer.parseInt(opt("count"));
        Connection c = connect();
        int sent = 0;
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(destination(s, dest));
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            for (int i = 1; i <= count; i++) {
                TextMessage m = s.createTextMessage("message " + i);
                m.setIntProperty("seq", i);
                p.send(m);
                sent++;
            }
        } catch (JMSException e) {
            out.put("error", describe(e));
            out.put("security", isSecurity(e));
        } finally {
            out.put("sent", sent);
            closeQuietly(c);
        }
        return sent == count;
    }

    /** Creates the --ready-file, if one was given (the caller waits for it). */
    private void markReady() throws java.io.IOException {
        String f = opts.get("ready-file");
        if (f != null) Files.write(Paths.get(f), new byte[0]);
    }

    private boolean produce() throws Exception {
        String dest = opt("dest");
        long durationNs = (long) (Double.parseDouble(opt("duration")) * 1e9);
        long gapMs = intOpt("gap-ms", 10);
        Connection c = connect();
        int acked = 0;
        long maxGap = 0;
        List<Long> gaps = new ArrayList<>();
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(destination(s, dest));
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            long start = System.nanoTime(), last = start;
            while (System.nanoTime() - start < durationNs) {
                TextMessage m = s.createTextMessage("message " + (acked + 1));
                m.setIntProperty("seq", acked + 1);
                p.send(m);
                acked++;
                if (acked == 1) markReady();
                long now = System.nanoTime();
                long gap = (now - last) / 1_000_000;
                maxGap = Math.max(maxGap, gap);
                if (gap > 250) gaps.add(gap);
                last = now;
                if (gapMs > 0) Thread.sleep(gapMs);
            }
        } catch (JMSException e) {
            out.put("error", describe(e));
        } finally {
            out.put("acked", acked);
            out.put("max_gap_ms", maxGap);
            out.put("gaps", gaps);
            closeQuietly(c);
        }
        return !out.containsKey("error");
    }

    private boolean consume() throws Exception {
        String dest = opt("dest");
        long idleMs = (long) (Double.parseDouble(opt("idle", "10")) * 1000);
        int after = Integer.parseInt(opt("after", "0"));
        TreeSet<Integer> seen = new TreeSet<>();
        int received = 0, duplicates = 0;
        long maxGap = 0;
        Connection c = connect();
        try {
            Session s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
            MessageConsumer mc = s.createConsumer(destination(s, dest));
            markReady();
            long last = 0;
            while (true) {
                Message m = mc.receive(idleMs);
                if (m == null) break;
                long now = System.nanoTime();
                if (last != 0) maxGap = Math.max(maxGap, (now - last) / 1_000_000);
                last = now;
                received++;
                if (!seen.add(m.getIntProperty("seq"))) duplicates++;
                m.acknowledge();
            }
        } catch (JMSException e) {
            out.put("error", describe(e));
        } finally {
            int contiguous = after;
            while (seen.contains(contiguous + 1)) contiguous++;
            out.put("received", received);
            out.put("distinct", seen.size());
            out.put("duplicates", duplicates);
            out.put("contiguous", contiguous);
            out.put("max_seq", seen.isEmpty() ? 0 : seen.last());
            out.put("max_gap_ms", maxGap);
            closeQuietly(c);
        }
        return !out.containsKey("error");
    }

    private boolean receive() throws Exception {
        String dest = opt("dest");
        int count = Integer.parseInt(opt("count"));
        long idleMs = (long) (Double.parseDouble(opt("timeout", "10")) * 1000);
        TreeSet<Integer> seen = new TreeSet<>();
        int received = 0, duplicates = 0;
        Connection c = connect();
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer mc = s.createConsumer(destination(s, dest));
            while (seen.size() < count) {
                Message m = mc.receive(idleMs);
                if (m == null) break;
                received++;
                if (!seen.add(m.getIntProperty("seq"))) duplicates++;
            }
        } catch (JMSException e) {
            out.put("error", describe(e));
            out.put("security", isSecurity(e));
        } finally {
            out.put("distinct", seen.size());
            out.put("received", received);
            out.put("duplicates", duplicates);
            out.put("max_seq", seen.isEmpty() ? 0 : seen.last());
            closeQuietly(c);
        }
        return seen.size() == count && duplicates == 0;
    }

    private boolean dlq() throws Exception {
        String dest = opt("dest");
        String dlqName = opt("dlq", "DLQ." + dest);
        long deadline = System.nanoTime() + (long) (Double.parseDouble(opt("timeout", "120")) * 1e9);
        String run = UUID.randomUUID().toString();
        out.put("dlq", dlqName);
        Connection c = connect();
        try {
            Session plain = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = plain.createProducer(plain.createQueue(dest));
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            TextMessage poison = plain.createTextMessage("poison " + run);
            poison.setStringProperty("berthRun", run);
            long t0 = System.nanoTime();
            p.send(poison);

            String selector = "berthRun = '" + run + "'";
            Session tx = c.createSession(true, Session.SESSION_TRANSACTED);
            MessageConsumer consumer = tx.createConsumer(tx.createQueue(dest), selector);
            MessageConsumer dead = plain.createConsumer(plain.createQueue(dlqName), selector);
            List<Integer> counts = new ArrayList<>();
            List<Long> times = new ArrayList<>();
            Message inDlq = null;
            while (inDlq == null && System.nanoTime() < deadline) {
                Message m = consumer.receive(250);
                if (m != null) {
                    counts.add(m.getIntProperty("JMSXDeliveryCount"));
                    times.add((System.nanoTime() - t0) / 1_000_000);
                    tx.rollback();
                }
                inDlq = dead.receive(m == null ? 250 : 1);
            }
            out.put("deliveries", counts.size());
            out.put("delivery_counts", counts);
            out.put("delivery_ms", times);
            out.put("seconds", (System.nanoTime() - t0) / 1e9);
            out.put("in_dlq", inDlq != null);
            if (inDlq == null) return false;
            out.put("cause", inDlq.getStringProperty("dlqDeliveryFailureCause"));
            if (inDlq instanceof ActiveMQMessage) {
                out.put("original_destination",
                        String.valueOf(((ActiveMQMessage) inDlq).getOriginalDestination()));
            }
            // Once dead-lettered, the message must not come back to the queue.
            Message after = consumer.receive(1000);
            out.put("after_dlq", after != null);
            if (after != null) tx.rollback();
            return !counts.isEmpty() && after == null;
        } finally {
            closeQuietly(c);
        }
    }

    private boolean writeDenied() throws Exception {
        String dest = opt("dest");
        Connection c = connect();
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            try {
                MessageProducer p = s.createProducer(destination(s, dest));
                p.setDeliveryMode(DeliveryMode.PERSISTENT);
                p.send(s.createTextMessage("must be refused"));
                out.put("denied", false);
                return false;
            } catch (JMSSecurityException e) {
                out.put("denied", true);
                out.put("error", describe(e));
                return true;
            } catch (JMSException e) {
                out.put("denied", false);
                out.put("error", describe(e));
                out.put("security", isSecurity(e));
                return false;
            }
        } finally {
            closeQuietly(c);
        }
    }

    // ------------------------------------------------------------------ helpers

    private static boolean isSecurity(Throwable t) {
        for (Throwable x = t; x != null; x = x.getCause()) {
            if (x instanceof JMSSecurityException || x instanceof SecurityException) return true;
        }
        return false;
    }

    private static String describe(Throwable t) {
        StringBuilder b = new StringBuilder();
        for (Throwable x = t; x != null; x = x.getCause()) {
            if (b.length() > 0) b.append(" <- ");
            b.append(x.getClass().getSimpleName()).append(": ").append(x.getMessage());
            if (x.getCause() == x) break;
        }
        return b.toString();
    }

    private static String toJson(Object v) {
        if (v == null) return "null";
        if (v instanceof Boolean || v instanceof Integer || v instanceof Long) return v.toString();
        if (v instanceof Double) return String.format(java.util.Locale.ROOT, "%.3f", (Double) v);
        if (v instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (b.length() > 1) b.append(',');
                b.append(toJson(String.valueOf(e.getKey()))).append(':').append(toJson(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : (List<?>) v) {
                if (b.length() > 1) b.append(',');
                b.append(toJson(o));
            }
            return b.append(']').toString();
        }
        String s = v.toString();
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                    else b.append(ch);
            }
        }
        return b.append('"').toString();
    }
}
