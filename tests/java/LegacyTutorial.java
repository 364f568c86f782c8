// The classic Java replica-set tutorial, written against the LEGACY 3.x driver API (com.mongodb.MongoClient,
// DB, DBCollection, BasicDBObject) and run with the real mongo-java-driver 3.6.3 (Debian's libmongodb-java)
// against a three-member set (two data members and an arbiter) of `faultline node` processes:
//
//   1. connect with new MongoClient(List<ServerAddress>, MongoClientOptions) as the tutorial does
//      (connectionsPerHost 10, connectTimeout 10 s, socketTimeout 1 s), and again with
//      new MongoClient(new MongoClientURI("mongodb://h1,h2,h3"));
//   2. CRUD through getDB()/DBCollection: insert BasicDBObjects, find, findOne, update with $set, remove,
//      count, each checked (a wrong answer is a FATAL exit 1);
//   3. read with ReadPreference.secondary() until a secondary has the replicated document (deadline);
//   4. write in a loop, one line per write, until "stop" arrives on stdin (the test changes the priorities
//      meanwhile so the other data member takes over as primary), then print one SUMMARY line and exit 0.
//
// Run by tests/node/java_legacy.test.mjs as a single-file source program (so compile errors fail the test):
//   java -cp /usr/share/java/mongo-java-driver.jar tests/java/LegacyTutorial.java h1:p1,h2:p2,h3:p3
//
// Output protocol (stdout, one line each, parsed by the test):
//   PHASE <name> [key=value...]                 progress
//   WRITE ok seq=N t=<epoch ms> ms=<latency> primary=<driver's view of the primary>
//   WRITE error seq=N t=<epoch ms> ms=<latency> ex=<exception class>: <message on one line>
//   SUMMARY ok=N failed=M maxGapMs=G firstOkSeq=A lastOkSeq=B primaries=h1>h2 loopMs=L
//   FATAL phase=<name> ex=<exception class>: <message>   (then exit 1; the stack trace goes to stderr)
//
// Loop writes use w:"majority": those are the writes MongoDB promises survive a change of primary, so the test
// can require every acknowledged one afterwards (a w:1 write may legitimately be rolled back in a takeover).
// Each attempt uses a new seq (= _id), so a failed attempt is "indeterminate", never retried under the same _id.

import com.mongodb.BasicDBObject;
import com.mongodb.DB;
import com.mongodb.DBCollection;
import com.mongodb.DBCursor;
import com.mongodb.DBObject;
import com.mongodb.MongoClient;
import com.mongodb.MongoClientOptions;
import com.mongodb.MongoClientURI;
import com.mongodb.ReadPreference;
import com.mongodb.ServerAddress;
import com.mongodb.WriteConcern;
import com.mongodb.WriteResult;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

@SuppressWarnings("deprecation") // getDB() and friends are the legacy API this tutorial is about
public class LegacyTutorial {
    static String phase = "start";

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: LegacyTutorial host1:port1,host2:port2,host3:port3 [--max-loop-ms N] [--secondary-read-ms N]");
            System.exit(2);
        }
        String[] hosts = args[0].split(",");
        long maxLoopMs = 90_000;
        long secondaryReadMs = 30_000;
        for (int i = 1; i + 1 < args.length; i += 2) {
            if (args[i].equals("--max-loop-ms")) maxLoopMs = Long.parseLong(args[i + 1]);
            else if (args[i].equals("--secondary-read-ms")) secondaryReadMs = Long.parseLong(args[i + 1]);
            else { System.err.println("unknown argument " + args[i]); System.exit(2); }
        }
        MongoClient client = null;
        MongoClient uriClient = null;
        try {
            // --- 1. connect, as the tutorial does -------------------------------------------------------------
            phase = "connect";
            List<ServerAddress> seeds = new ArrayList<>();
            for (String h : hosts) {
                String[] hp = h.split(":");
                seeds.add(new ServerAddress(hp[0], Integer.parseInt(hp[1])));
            }
            MongoClientOptions options = new MongoClientOptions.Builder()
                    .connectionsPerHost(10)
                    .connectTimeout(10000)
                    .socketTimeout(1000)
                    .build();
            client = new MongoClient(seeds, options);
            uriClient = new MongoClient(new MongoClientURI("mongodb://" + String.join(",", hosts)));
            out("PHASE connected seeds=" + String.join(",", hosts));

            // --- 2. CRUD through the legacy DB / DBCollection API ---------------------------------------------
            phase = "crud";
            DB db = client.getDB("mydb");
            DBCollection coll = db.getCollection("testCollection");
            coll.drop();

            BasicDBObject doc = new BasicDBObject("name", "MongoDB")
                    .append("type", "database")
                    .append("count", 1)
                    .append("info", new BasicDBObject("x", 203).append("y", 102));
            coll.insert(doc);
            List<DBObject> many = new ArrayList<>();
            for (int i = 0; i < 100; i++) many.add(new BasicDBObject("i", i));
            coll.insert(many);
            out("PHASE inserted server=" + client.getReplicaSetStatus().getMaster());

            check("count() after 101 inserts", coll.count() == 101, "count=" + coll.count());
            DBObject first = coll.findOne(new BasicDBObject("name", "MongoDB"));
            check("findOne by name", first != null && "database".equals(first.get("type")), String.valueOf(first));
            check("findOne nested field", first != null && ((DBObject) first.get("info")).get("x").equals(203), String.valueOf(first));

            int seen = 0;
            try (DBCursor cursor = coll.find(new BasicDBObject("i", new BasicDBObject("$gt", 50)))) {
                while (cursor.hasNext()) { cursor.next(); seen++; }
            }
            check("find i > 50", seen == 49, "saw " + seen);
            int ranged = 0;
            try (DBCursor cursor = coll.find(new BasicDBObject("i", new BasicDBObject("$gt", 20).append("$lte", 30)))
                    .sort(new BasicDBObject("i", -1))) {
                int expect = 30;
                while (cursor.hasNext()) {
                    Object i = cursor.next().get("i");
                    check("find 20 < i <= 30 sorted descending", Integer.valueOf(expect).equals(i), "expected " + expect + ", got " + i);
                    expect--;
                    ranged++;
                }
            }
            check("find 20 < i <= 30", ranged == 10, "saw " + ranged);

            WriteResult updated = coll.update(new BasicDBObject("i", 10), new BasicDBObject("$set", new BasicDBObject("i", 110)));
            check("update with $set: n", updated.getN() == 1 && updated.isUpdateOfExisting(), String.valueOf(updated));
            check("update visible", coll.findOne(new BasicDBObject("i", 110)) != null && coll.findOne(new BasicDBObject("i", 10)) == null, "");
            WriteResult multi = coll.update(new BasicDBObject("i", new BasicDBObject("$lt", 5)),
                    new BasicDBObject("$set", new BasicDBObject("small", true)), false, true);
            check("multi update: n", multi.getN() == 5, String.valueOf(multi));
            check("count(small)", coll.count(new BasicDBObject("small", true)) == 5, "");

            WriteResult removed = coll.remove(new BasicDBObject("i", new BasicDBObject("$gte", 100)));
            check("remove i >= 100: n", removed.getN() == 1, String.valueOf(removed)); // only the updated 110
            check("count() after remove", coll.count() == 100, "count=" + coll.count());

            // The URI client sees the same data (it discovers the set from the seed list by itself).
            long viaUri = uriClient.getDB("mydb").getCollection("testCollection").count();
            check("count() through the MongoClientURI client", viaUri == 100, "count=" + viaUri);
            out("PHASE crud-ok count=" + coll.count());

            // --- 3. a read from a secondary that sees a replicated document -------------------------------------
            phase = "secondary-read";
            BasicDBObject marker = new BasicDBObject("_id", "replicated-marker").append("at", System.currentTimeMillis());
            coll.insert(marker);
            long deadline = System.currentTimeMillis() + secondaryReadMs;
            int attempts = 0;
            String lastProblem = "never tried";
            for (;;) {
                attempts++;
                try (DBCursor cursor = coll.find(new BasicDBObject("_id", "replicated-marker"))
                        .setReadPreference(ReadPreference.secondary())) {
                    if (cursor.hasNext()) {
                        DBObject found = cursor.next();
                        ServerAddress from = cursor.getServerAddress();
                        ServerAddress primary = client.getReplicaSetStatus().getMaster();
                        check("secondary read came from a non-primary", from != null && !from.equals(primary),
                                "served by " + from + ", primary " + primary);
                        check("secondary read document", marker.get("at").equals(found.get("at")), String.valueOf(found));
                        out("PHASE secondary-read-ok server=" + from + " primary=" + primary + " attempts=" + attempts);
                        break;
                    }
                    lastProblem = "not there yet on " + cursor.getServerAddress();
                } catch (RuntimeException e) {
                    lastProblem = oneLine(e);
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("no secondary had the replicated document after " + secondaryReadMs
                            + " ms (" + attempts + " attempts); last: " + lastProblem);
                }
                Thread.sleep(100); // polling interval of the retry loop above
            }

            // --- 4. keep writing while the test changes the primary --------------------------------------------
            phase = "loop";
            AtomicBoolean stop = new AtomicBoolean(false);
            Thread stdin = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (line.trim().equals("stop")) break;
                    }
                } catch (Exception ignored) {
                    // stdin closed or broken: stop as well
                }
                stop.set(true);
            }, "stdin-reader");
            stdin.setDaemon(true);
            stdin.start();

            DBCollection loop = client.getDB("mydb").getCollection("writeLoop");
            long loopStart = System.currentTimeMillis();
            long lastOkAt = -1, maxGapMs = 0;
            int ok = 0, failed = 0;
            long firstOkSeq = -1, lastOkSeq = -1;
            Set<String> primaries = new LinkedHashSet<>();
            out("PHASE loop-start");
            for (long seq = 0; !stop.get(); seq++) {
                if (System.currentTimeMillis() - loopStart > maxLoopMs) {
                    throw new IllegalStateException("no \"stop\" on stdin after " + maxLoopMs + " ms of writing");
                }
                long t0 = System.currentTimeMillis();
                try {
                    loop.insert(new BasicDBObject("_id", seq).append("seq", seq).append("t", t0), WriteConcern.MAJORITY);
                    long t1 = System.currentTimeMillis();
                    ServerAddress primary = client.getReplicaSetStatus().getMaster();
                    if (primary != null) primaries.add(primary.toString());
                    if (lastOkAt >= 0) maxGapMs = Math.max(maxGapMs, t1 - lastOkAt);
                    lastOkAt = t1;
                    ok++;
                    if (firstOkSeq < 0) firstOkSeq = seq;
                    lastOkSeq = seq;
                    out("WRITE ok seq=" + seq + " t=" + t1 + " ms=" + (t1 - t0) + " primary=" + primary);
                } catch (RuntimeException e) {
                    long t1 = System.currentTimeMillis();
                    failed++;
                    out("WRITE error seq=" + seq + " t=" + t1 + " ms=" + (t1 - t0) + " ex=" + oneLine(e));
                }
                Thread.sleep(20); // pacing: about 50 writes a second when all is well
            }
            long loopMs = System.currentTimeMillis() - loopStart;
            out("SUMMARY ok=" + ok + " failed=" + failed + " maxGapMs=" + maxGapMs + " firstOkSeq=" + firstOkSeq
                    + " lastOkSeq=" + lastOkSeq + " primaries=" + String.join(">", primaries) + " loopMs=" + loopMs);
            phase = "close";
            client.close();
            uriClient.close();
            System.exit(0);
        } catch (Throwable e) {
            out("FATAL phase=" + phase + " ex=" + oneLine(e));
            e.printStackTrace();
            System.exit(1);
        }
    }

    static void check(String what, boolean condition, String detail) {
        if (!condition) throw new IllegalStateException("check failed: " + what + (detail.isEmpty() ? "" : " (" + detail + ")"));
    }

    static String oneLine(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName() + ": " + e.getMessage());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            sb.append(" | caused by ").append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        return sb.toString().replace('\n', ' ').replace('\r', ' ');
    }

    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
