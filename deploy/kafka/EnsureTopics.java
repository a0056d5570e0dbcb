// Helper for broker.sh: one JVM launch that waits until the broker serves
// admin requests, creates the missing topics and, on a secure broker, upserts
// the SCRAM users and creates the ACLs (the equivalent of one
// `kafka-topics.sh --create --if-not-exists` per topic plus `kafka-configs.sh`
// and `kafka-acls.sh` runs, which would cost a JVM start each; TopicCommand is
// not even in the jars: it lives in kafka-tools, which drags in Kafka Connect,
// Jetty and Jersey).
//
//   java -cp 'libs/*:classes' EnsureTopics [OPTIONS] ensure BOOTSTRAP TIMEOUT_S PARTITIONS TOPIC[:compact]...
//   java -cp 'libs/*:classes' EnsureTopics [OPTIONS] list   BOOTSTRAP TIMEOUT_S
//
// OPTIONS (before the mode):
//   --config FILE  client properties (security.protocol, ssl.*) for the admin connection
//   --users FILE   tab-separated lines "NAME PASSWORD_FILE": SCRAM-SHA-512 credentials
//                  to upsert
//   --acls FILE    tab-separated lines "PRINCIPAL RESOURCE_TYPE PATTERN_TYPE NAME OPERATION":
//                  ALLOW bindings for any host (creating an existing binding is a no-op)
//
// Exit 0 when every topic exists and each partition has a leader (and the
// users and ACLs are in place); 1 on a fatal error or when TIMEOUT_S passes
// first.  Only kafka-clients is used.

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.PolicyViolationException;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public final class EnsureTopics {

    private static final int SCRAM_ITERATIONS = 4096; // the minimum Kafka accepts for SHA-512

    private static final class Fatal extends Exception {
        Fatal(String message) { super(message); }
    }

    public static void main(String[] args) throws Exception {
        String config = null, users = null, acls = null;
        int i = 0;
        while (i + 1 < args.length && args[i].startsWith("--")) {
            switch (args[i]) {
                case "--config": config = args[i + 1]; break;
                case "--users": users = args[i + 1]; break;
                case "--acls": acls = args[i + 1]; break;
                default: usage();
            }
            i += 2;
        }
        args = Arrays.copyOfRange(args, i, args.length);
        if (args.length < 3 || !(args[0].equals("list") || (args[0].equals("ensure") && args.length >= 4))) {
            usage();
        }
        String mode = args[0];
        String bootstrap = args[1];
        long deadline = System.nanoTime() + Long.parseLong(args[2]) * 1_000_000_000L;
        int partitions = mode.equals("ensure") ? Integer.parseInt(args[3]) : 0;
        Map<String, Map<String, String>> topics = new LinkedHashMap<>();
        if (mode.equals("ensure")) {
            for (String spec : Arrays.asList(args).subList(4, args.length)) {
                String[] parts = spec.split(":", 2);
                Map<String, String> conf = new LinkedHashMap<>();
                if (parts.length == 2) {
                    if (!parts[1].equals("compact")) usage();
                    conf.put("cleanup.policy", "compact");
                }
                topics.put(parts[0], conf);
            }
        }

        Properties props = new Properties();
        if (config != null) {
            try (InputStream in = new FileInputStream(config)) {
                props.load(in);
            }
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "rating-engine-broker-sh");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "200");

        String lastError = "no answer from " + bootstrap;
        boolean securityDone = users == null && acls == null;
        try (Admin admin = Admin.create(props)) {
            while (true) {
                try {
                    if (mode.equals("list")) {
                        Set<String> names = admin.listTopics(new ListTopicsOptions().timeoutMs(5000)).names().get();
                        for (String name : new TreeSet<>(names)) System.out.println(name);
                        return;
                    }
                    if (!securityDone) {
                        // users first: a client may connect as soon as its topics exist
                        if (users != null) upsertUsers(admin, users);
                        if (acls != null) createAcls(admin, acls);
                        securityDone = true;
                    }
                    if (ensure(admin, topics, partitions)) return;
                    lastError = "some partitions have no leader yet";
                } catch (Fatal e) {
                    System.err.println("EnsureTopics: " + e.getMessage());
                    System.exit(1);
                } catch (ExecutionException e) {
                    Throwable c = e.getCause();
                    if (c instanceof AuthenticationException || c instanceof SslAuthenticationException
                            || c instanceof AuthorizationException) {
                        // the broker answered and said no: waiting will not change it
                        System.err.println("EnsureTopics: the broker refused the script's admin client: " + c);
                        System.exit(1);
                    }
                    lastError = String.valueOf(c);
                }
                if (System.nanoTime() > deadline) {
                    System.err.println("EnsureTopics: gave up waiting for " + bootstrap + ": " + lastError);
                    System.exit(1);
                }
                Thread.sleep(300);
            }
        }
    }

    private static void usage() {
        System.err.println("usage: EnsureTopics [--config FILE] [--users FILE] [--acls FILE] "
                + "ensure BOOTSTRAP TIMEOUT_S PARTITIONS TOPIC[:compact]... | list BOOTSTRAP TIMEOUT_S");
        System.exit(2);
    }

    /** Non-empty, non-comment lines of FILE split on tabs, each with `fields` fields. */
    private static List<String[]> lines(String file, int fields) throws IOException, Fatal {
        List<String[]> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(file), StandardCharsets.UTF_8)) {
            line = line.strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] f = line.split("\t");
            if (f.length != fields) throw new Fatal(file + ": expected " + fields + " fields in: " + line);
            out.add(f);
        }
        return out;
    }

    private static void upsertUsers(Admin admin, String file)
            throws IOException, Fatal, ExecutionException, InterruptedException {
        List<UserScramCredentialAlteration> alterations = new ArrayList<>();
        for (String[] f : lines(file, 2)) {
            String password = Files.readString(Path.of(f[1]), StandardCharsets.UTF_8).strip();
            if (password.isEmpty()) throw new Fatal("empty password file " + f[1]);
            alterations.add(new UserScramCredentialUpsertion(
                    f[0], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password));
        }
        if (alterations.isEmpty()) return;
        admin.alterUserScramCredentials(alterations).all().get();
        System.out.println("upserted " + alterations.size() + " SCRAM-SHA-512 users");
    }

    private static void createAcls(Admin admin, String file)
            throws IOException, Fatal, ExecutionException, InterruptedException {
        List<AclBinding> bindings = new ArrayList<>();
        for (String[] f : lines(file, 5)) {
            try {
                bindings.add(new AclBinding(
                        new ResourcePattern(ResourceType.valueOf(f[1]), f[3], PatternType.valueOf(f[2])),
                        new AccessControlEntry(f[0], "*", AclOperation.valueOf(f[4]), AclPermissionType.ALLOW)));
            } catch (IllegalArgumentException e) {
                throw new Fatal(file + ": bad ACL " + String.join(" ", f) + ": " + e.getMessage());
            }
        }
        if (bindings.isEmpty()) return;
        admin.createAcls(bindings).all().get();
        System.out.println("ensured " + bindings.size() + " ACL bindings");
    }

    /** true when all topics exist and every partition has a leader. */
    private static boolean ensure(Admin admin, Map<String, Map<String, String>> topics, int partitions)
            throws ExecutionException, InterruptedException, Fatal {
        Set<String> existing = admin.listTopics(new ListTopicsOptions().timeoutMs(5000)).names().get();
        List<NewTopic> missing = new ArrayList<>();
        for (Map.Entry<String, Map<String, String>> t : topics.entrySet()) {
            if (!existing.contains(t.getKey())) {
                missing.add(new NewTopic(t.getKey(), partitions, (short) 1).configs(t.getValue()));
            }
        }
        if (!missing.isEmpty()) {
            Map<String, org.apache.kafka.common.KafkaFuture<Void>> results =
                    admin.createTopics(missing, new CreateTopicsOptions().timeoutMs(10000)).values();
            for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> r : results.entrySet()) {
                try {
                    r.getValue().get();
                    String compact = topics.get(r.getKey()).isEmpty() ? "" : ", compacted";
                    System.out.println("created topic " + r.getKey() + " (" + partitions + " partitions" + compact + ")");
                } catch (ExecutionException e) {
                    Throwable c = e.getCause();
                    if (c instanceof TopicExistsException) continue; // raced with another creator
                    if (c instanceof InvalidTopicException || c instanceof InvalidPartitionsException
                            || c instanceof InvalidConfigurationException || c instanceof PolicyViolationException) {
                        throw new Fatal("cannot create topic " + r.getKey() + ": " + c.getMessage());
                    }
                    throw e; // e.g. "only 0 broker(s) are registered" while the broker starts: retry
                }
            }
        }
        List<String> names = new ArrayList<>(topics.keySet());
        Map<String, TopicDescription> described =
                admin.describeTopics(names, new DescribeTopicsOptions().timeoutMs(5000)).allTopicNames().get();
        boolean ready = true;
        for (TopicDescription d : described.values()) {
            for (TopicPartitionInfo p : d.partitions()) {
                if (p.leader() == null || p.leader().isEmpty()) ready = false;
            }
        }
        if (!ready) return false;
        for (String t : names) {
            int n = described.get(t).partitions().size();
            if (n != partitions) {
                System.err.println("warning: topic " + t + " already exists with " + n
                        + " partitions (asked for " + partitions + "); left as is");
            }
        }
        return true;
    }
}
