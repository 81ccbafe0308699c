/*
 * CaptureToFiles: PostgreSQL changes -> Debezium JSON envelopes in JSON Lines files, one folder per table.
 *
 * The local stand-in for the CDC delivery of a PostgreSQL database. In AWS this role is Debezium Server or MSK
 * Connect writing the same envelopes to the S3 landing bucket (Debezium Server through its Kinesis sink and
 * Firehose, MSK Connect through an S3 sink connector); this program is only the local stand-in. It runs the
 * real Debezium PostgreSQL connector in Debezium's embedded engine (no Kafka), reading the database's logical
 * decoding stream (pgoutput), and writes what the S3 delivery writes, to local folders.
 *
 *   java -cp '.jars-debezium/*' scripts/debezium/CaptureToFiles.java <properties file> <out dir>
 *        [--idle-seconds N] [--expect N] [--max-seconds N]
 *
 * The properties file names the database (database.hostname/port/user/password/dbname), the tables
 * (table.include.list), the replication slot (slot.name), the publication (publication.name), the offsets
 * file (offset.storage.file.filename) and topic.prefix; scripts/debezium/shop_db.properties is the local shop
 * database's. The settings that decide the shape of the events are fixed below (FIXED) and win over the file:
 * the landing conf (conf/sources/shop_db_cdc.yaml) is written for exactly that shape.
 *
 * What it writes: each change event's VALUE (the envelope: before, after, op c/r/u/d, ts_ms, source with lsn,
 * txId and sequence), one JSON object a line, to <out dir>/<table>/<run start>-<batch>.jsonl: a new file per
 * batch the engine hands over, named so that names sort in commit order (the run's start time, then the batch
 * number within the run). A file is written under a hidden .tmp name and renamed, so a reader never sees half
 * of one. Events are marked processed (and their offsets committed) only after their file is in place: a crash
 * re-delivers, never loses (at least once; silver drops the copies).
 *
 * Delete tombstones (the null-valued event Debezium sends after each delete, for Kafka log compaction) are
 * skipped: the delete event before it carries the key, and a file has no compaction.
 *
 * Runs: the first run (no offsets yet) takes a snapshot of the tables' rows (op r) and then streams; a later
 * run resumes from the offsets file and the slot, so it writes only what changed since. It stops once it has
 * written --expect events, or when it has been streaming with no event for --idle-seconds (default 5), or fails
 * after --max-seconds (default 300). It prints one JSON line of counts to stdout when done.
 */

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.IOException;
import java.io.Reader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import javax.management.ObjectName;

public class CaptureToFiles {

    /** The settings that make the envelope what the landing conf expects; they override the properties file. */
    static final Map<String, String> FIXED = new LinkedHashMap<>();

    static {
        FIXED.put("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        FIXED.put("plugin.name", "pgoutput"); // PostgreSQL's built-in logical decoding output plugin
        FIXED.put("publication.autocreate.mode", "filtered"); // a publication for table.include.list only
        FIXED.put("snapshot.mode", "initial"); // snapshot when there are no offsets, then stream
        FIXED.put("slot.drop.on.stop", "false"); // the slot keeps the changes between runs
        FIXED.put("decimal.handling.mode", "string"); // numeric(12,2) as "12.50", never a rounded double
        FIXED.put("time.precision.mode", "adaptive"); // timestamptz as ISO-8601 text (ZonedTimestamp)
        FIXED.put("key.converter.schemas.enable", "false"); // the envelope alone, no {schema, payload}
        FIXED.put("value.converter.schemas.enable", "false");
        FIXED.put("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
        FIXED.put("offset.flush.interval.ms", "0"); // commit offsets after every batch
    }

    static final DateTimeFormatter RUN_NAME = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmssSSS'Z'");

    final Path out;
    final String runName = ZonedDateTime.now(ZoneOffset.UTC).format(RUN_NAME);
    final AtomicLong events = new AtomicLong();
    final AtomicLong tombstones = new AtomicLong();
    final AtomicLong files = new AtomicLong();
    final AtomicLong lastEventNanos = new AtomicLong(0);
    final AtomicReference<Throwable> failure = new AtomicReference<>();
    volatile boolean finished;
    long batches;

    CaptureToFiles(Path out) {
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", System.getProperty("capture.log", "warn"));
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        if (args.length < 2) {
            System.err.println("usage: CaptureToFiles <properties file> <out dir> [--idle-seconds N] [--expect N]"
                    + " [--max-seconds N]");
            System.exit(64);
        }
        Properties props = new Properties();
        try (Reader reader = Files.newBufferedReader(Path.of(args[0]), StandardCharsets.UTF_8)) {
            props.load(reader);
        }
        props.putAll(FIXED);
        String offsets = props.getProperty("offset.storage.file.filename");
        if (offsets == null) {
            throw new IllegalArgumentException(args[0] + ": offset.storage.file.filename is required");
        }
        Path offsetsFolder = Path.of(offsets).toAbsolutePath().getParent();
        Files.createDirectories(offsetsFolder); // the file itself is created by the first commit
        props.putIfAbsent("name", "capture-" + props.getProperty("slot.name", "debezium"));
        long idle = 5, expect = 0, max = 300;
        for (int i = 2; i + 1 < args.length; i += 2) {
            long value = Long.parseLong(args[i + 1]);
            switch (args[i]) {
                case "--idle-seconds" -> idle = value;
                case "--expect" -> expect = value;
                case "--max-seconds" -> max = value;
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        System.exit(new CaptureToFiles(Path.of(args[1])).run(props, idle, expect, max));
    }

    int run(Properties props, long idleSeconds, long expect, long maxSeconds) throws Exception {
        long start = System.nanoTime();
        String streaming = "debezium.postgres:type=connector-metrics,context=streaming,server="
                + props.getProperty("topic.prefix");
        ExecutorService executor = Executors.newSingleThreadExecutor();
        try (DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(props)
                .notifying(this::handleBatch)
                .using((success, message, error) -> {
                    if (!success) {
                        failure.compareAndSet(null, error != null ? error : new IllegalStateException(message));
                    }
                    finished = true;
                })
                .build()) {
            executor.execute(engine);
            long streamingSince = 0;
            String stopped = null;
            while (stopped == null) {
                TimeUnit.MILLISECONDS.sleep(200);
                long now = System.nanoTime();
                if (streamingSince == 0 && isConnected(streaming)) {
                    streamingSince = now;
                }
                long quietSince = Math.max(streamingSince, lastEventNanos.get());
                if (failure.get() != null || finished) {
                    stopped = "engine stopped";
                } else if (expect > 0 && events.get() >= expect) {
                    stopped = "expected count";
                } else if (streamingSince > 0 && now - quietSince >= TimeUnit.SECONDS.toNanos(idleSeconds)) {
                    stopped = "idle";
                } else if (now - start >= TimeUnit.SECONDS.toNanos(maxSeconds)) {
                    failure.compareAndSet(null, new IllegalStateException("no stop after " + maxSeconds + " s ("
                            + events.get() + " events, expected " + expect + ")"));
                    stopped = "timeout";
                }
            }
        } // close(): stops the task and commits the offsets of every event marked processed
        executor.shutdown();
        executor.awaitTermination(60, TimeUnit.SECONDS);
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("{\"events\": %d, \"tombstones\": %d, \"files\": %d, \"seconds\": %.1f}%n",
                events.get(), tombstones.get(), files.get(), seconds);
        Throwable error = failure.get();
        if (error != null) {
            System.err.println("capture failed: " + error);
            return 1;
        }
        return 0;
    }

    /** True once the connector's streaming phase is connected to the slot (Debezium's JMX metrics). */
    static boolean isConnected(String mbean) {
        try {
            Object value = ManagementFactory.getPlatformMBeanServer().getAttribute(new ObjectName(mbean), "Connected");
            return Boolean.TRUE.equals(value);
        } catch (Exception notYet) {
            return false; // registered when streaming starts
        }
    }

    /** Write one file per table for this batch, then mark its events processed (so their offsets commit). */
    void handleBatch(List<ChangeEvent<String, String>> records,
            DebeziumEngine.RecordCommitter<ChangeEvent<String, String>> committer) throws InterruptedException {
        Map<String, List<String>> byTable = new LinkedHashMap<>();
        for (ChangeEvent<String, String> record : records) {
            if (record.value() == null) {
                tombstones.incrementAndGet(); // a delete's tombstone: for Kafka compaction, nothing to land
                continue;
            }
            byTable.computeIfAbsent(tableOf(record.destination()), t -> new ArrayList<>()).add(record.value());
        }
        batches++;
        try {
            for (Map.Entry<String, List<String>> table : byTable.entrySet()) {
                write(table.getKey(), table.getValue());
            }
        } catch (IOException e) {
            failure.compareAndSet(null, e);
            throw new IllegalStateException("could not write the batch; its offsets are not committed", e);
        }
        for (ChangeEvent<String, String> record : records) {
            committer.markProcessed(record);
        }
        committer.markBatchFinished();
        if (!byTable.isEmpty()) {
            lastEventNanos.set(System.nanoTime());
        }
    }

    /** The table of a topic named <topic.prefix>.<schema>.<table>. */
    static String tableOf(String destination) {
        return destination.substring(destination.lastIndexOf('.') + 1);
    }

    void write(String table, List<String> lines) throws IOException {
        Path folder = Files.createDirectories(out.resolve(table));
        String name = String.format("%s-%06d.jsonl", runName, batches);
        Path hidden = folder.resolve("." + name + ".tmp");
        Files.write(hidden, (String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
        Files.move(hidden, folder.resolve(name), StandardCopyOption.ATOMIC_MOVE);
        files.incrementAndGet();
        events.addAndGet(lines.size());
    }
}
