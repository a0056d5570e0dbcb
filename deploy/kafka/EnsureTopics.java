// Helper for broker.sh: one JVM launch that waits until the broker serves
// admin requests and creates the missing topics (the equivalent of one
// `kafka-topics.sh --create --if-not-exists` per topic, which would cost a JVM
// start each; TopicCommand is not even in the jars: it lives in kafka-tools,
// which drags in Kafka Connect, Jetty and Jersey).
//
//   java -cp 'libs/*:classes' EnsureTopics ensure BOOTSTRAP TIMEOUT_S PARTITIONS TOPIC...
//   java -cp 'libs/*:classes' EnsureTopics list   BOOTSTRAP TIMEOUT_S
//
// Exit 0 when every topic exists and each partition has a leader; 1 on a
// fatal error or when TIMEOUT_S passes first.  Only kafka-clients is used.

import java.util.ArrayList;
import java.util.Arrays;
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
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.PolicyViolationException;
import org.apache.kafka.common.errors.TopicExistsException;

public final class EnsureTopics {

    private static final class Fatal extends Exception {
        Fatal(String message) { super(message); }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3 || !(args[0].equals("list") || (args[0].equals("ensure") && args.length >= 4))) {
            System.err.println("usage: EnsureTopics ensure BOOTSTRAP TIMEOUT_S PARTITIONS TOPIC... | list BOOTSTRAP TIMEOUT_S");
            System.exit(2);
        }
        String mode = args[0];
        String bootstrap = args[1];
        long deadline = System.nanoTime() + Long.parseLong(args[2]) * 1_000_000_000L;
        int partitions = mode.equals("ensure") ? Integer.parseInt(args[3]) : 0;
        List<String> topics = mode.equals("ensure") ? Arrays.asList(args).subList(4, args.length) : List.of();

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "rating-engine-broker-sh");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "200");

        String lastError = "no answer from " + bootstrap;
        try (Admin admin = Admin.create(props)) {
            while (true) {
                try {
                    if (mode.equals("list")) {
                        Set<String> names = admin.listTopics(new ListTopicsOptions().timeoutMs(5000)).names().get();
                        for (String name : new TreeSet<>(names)) System.out.println(name);
                        return;
                    }
                    if (ensure(admin, topics, partitions)) return;
                    lastError = "some partitions have no leader yet";
                } catch (Fatal e) {
                    System.err.println("EnsureTopics: " + e.getMessage());
                    System.exit(1);
                } catch (ExecutionException e) {
                    lastError = String.valueOf(e.getCause());
                }
                if (System.nanoTime() > deadline) {
                    System.err.println("EnsureTopics: gave up waiting for " + bootstrap + ": " + lastError);
                    System.exit(1);
                }
                Thread.sleep(300);
            }
        }
    }

    /** true when all topics exist and every partition has a leader. */
    private static boolean ensure(Admin admin, List<String> topics, int partitions)
            throws ExecutionException, InterruptedException, Fatal {
        Set<String> existing = admin.listTopics(new ListTopicsOptions().timeoutMs(5000)).names().get();
        List<NewTopic> missing = new ArrayList<>();
        for (String t : topics) {
            if (!existing.contains(t)) missing.add(new NewTopic(t, partitions, (short) 1));
        }
        if (!missing.isEmpty()) {
            Map<String, org.apache.kafka.common.KafkaFuture<Void>> results =
                    admin.createTopics(missing, new CreateTopicsOptions().timeoutMs(10000)).values();
            for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> r : results.entrySet()) {
                try {
                    r.getValue().get();
                    System.out.println("created topic " + r.getKey() + " (" + partitions + " partitions)");
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
        Map<String, TopicDescription> described =
                admin.describeTopics(topics, new DescribeTopicsOptions().timeoutMs(5000)).allTopicNames().get();
        boolean ready = true;
        for (TopicDescription d : described.values()) {
            for (TopicPartitionInfo p : d.partitions()) {
                if (p.leader() == null || p.leader().isEmpty()) ready = false;
            }
        }
        if (!ready) return false;
        for (String t : topics) {
            int n = described.get(t).partitions().size();
            if (n != partitions) {
                System.err.println("warning: topic " + t + " already exists with " + n
                        + " partitions (asked for " + partitions + "); left as is");
            }
        }
        return true;
    }
}
