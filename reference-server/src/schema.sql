CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, event_type TEXT NOT NULL, ts TEXT NOT NULL, payload TEXT NOT NULL, frame BLOB);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE INDEX IF NOT EXISTS events_unframed ON events(seq) WHERE frame IS NULL;
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, receipt_hash TEXT, completed_at TEXT);
CREATE TABLE IF NOT EXISTS artifacts (job_id TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (job_id, name));
CREATE TABLE IF NOT EXISTS idempotency_keys (job_id TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL, seqs TEXT NOT NULL, PRIMARY KEY (job_id, key));
