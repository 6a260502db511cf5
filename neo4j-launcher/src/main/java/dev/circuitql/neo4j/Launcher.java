package dev.circuitql.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

/**
 * An embedded Neo4j Community server reachable over Bolt on 127.0.0.1, for machines without
 * Docker.
 *
 * <p>Usage: {@code java -jar neo4j-launcher.jar DATA_DIR [PORT]}. The port defaults to
 * {@code $CIRCUITQL_NEO4J_PORT} or 7687; the password of user {@code neo4j} comes from
 * {@code $CIRCUITQL_NEO4J_PASSWORD} (default {@code circuitql-dev}) so it never shows in a
 * process listing. The password is applied only while the server still asks for the factory
 * one, i.e. at the first start of a data directory; later starts keep whatever was set.
 *
 * <p>The line {@value #READY} is printed only once the default database accepts transactions;
 * callers wait for it. SIGTERM runs the shutdown hook, which shuts the databases down cleanly.
 */
public final class Launcher {
    static final String READY = "circuitql-neo4j ready";
    private static final String DEFAULT_PASSWORD = "circuitql-dev";
    private static final String DEFAULT_PORT = "7687";
    private static final long START_TIMEOUT_SECONDS = 300;
    private static final Duration TX_END_WAIT = Duration.ofSeconds(3);
    private static final Duration SHORT_WAIT = Duration.ofMillis(200);

    private Launcher() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: java -jar neo4j-launcher.jar DATA_DIR [PORT]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = parsePort(args.length > 1 ? args[1] : env("CIRCUITQL_NEO4J_PORT", DEFAULT_PORT));
        String password = env("CIRCUITQL_NEO4J_PASSWORD", DEFAULT_PASSWORD);

        SocketAddress bolt = new SocketAddress("127.0.0.1", port);
        DatabaseManagementService service = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, bolt)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                // A stop gives running transactions a moment to finish, then rolls them back
                // (default: 10 s). Bolt shuts down after the databases have stopped, so there is
                // nothing left to wait for there (default: 5 s twice).
                .setConfig(GraphDatabaseSettings.shutdown_transaction_end_timeout, TX_END_WAIT)
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, SHORT_WAIT)
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, SHORT_WAIT)
                // The machine is shared: a small page cache and bounded transaction logs.
                .setConfig(GraphDatabaseSettings.pagecache_memory, 256L * 1024 * 1024)
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "100M size")
                .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("circuitql-neo4j stopping");
            service.shutdown();
            stopped.countDown();
        }, "circuitql-neo4j-shutdown"));

        try {
            GraphDatabaseService db = service.database("neo4j");
            if (!db.isAvailable(TimeUnit.SECONDS.toMillis(START_TIMEOUT_SECONDS))) {
                throw new IllegalStateException("database did not become available; see logs/");
            }
            setInitialPassword(service.database("system"), password);
        } catch (RuntimeException e) {
            // Neo4j's own threads would keep a half-started JVM alive: exit (the hook shuts down).
            System.err.println("circuitql-neo4j: start failed: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println(READY + " bolt://127.0.0.1:" + port);
        stopped.await();
    }

    /** Replace the factory password of user neo4j; a no-op once it has been changed. */
    private static void setInitialPassword(GraphDatabaseService system, String password) {
        boolean factory = system.executeTransactionally(
                "SHOW USERS YIELD user, passwordChangeRequired "
                        + "WHERE user = 'neo4j' RETURN passwordChangeRequired",
                Map.of(),
                result -> result.hasNext() && Boolean.TRUE.equals(
                        result.next().get("passwordChangeRequired")));
        if (factory) {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
            System.out.println("circuitql-neo4j: initial password of user neo4j set");
        }
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            if (port > 0 && port < 65536) {
                return port;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        System.err.println("circuitql-neo4j: port must be a number in 1..65535, got " + text);
        System.exit(2);
        return -1;
    }
}
