-- A schema-1 registry written by guardrails.registry at commit 5aec781 (before schema 2):
-- 3 components x 3 artifacts, a shadow alias, a two-component promote, a rollback, a promote.
-- Made with Registry.register / set_alias / promote / rollback, then sqlite3 iterdump(); paths relative to the root.
BEGIN TRANSACTION;
CREATE TABLE aliases (
        component TEXT NOT NULL,
        alias TEXT NOT NULL CHECK (alias IN ('production', 'shadow', 'candidate', 'previous')),
        fingerprint TEXT NOT NULL REFERENCES artifacts (fingerprint),
        updated_at TEXT NOT NULL,
        verdict_sha256 TEXT NULL,
        PRIMARY KEY (component, alias));
INSERT INTO "aliases" VALUES('embedder','production','sha256:embedder-1','2026-12-06T10:46:43.645014+00:00','a52da253f63021699e4ded9d63b99075a475a241f7aa258336528039599b9bd9');
INSERT INTO "aliases" VALUES('generator','production','sha256:generator-0','2026-12-06T10:46:43.653106+00:00',NULL);
INSERT INTO "aliases" VALUES('alignment','production','sha256:alignment-2','2026-12-06T10:46:43.663587+00:00','3e1d436c1e851d4bce19c71a474ca415641543b26bf320d8b94f32dbe37ecb32');
INSERT INTO "aliases" VALUES('embedder','shadow','sha256:embedder-2','2026-12-06T10:46:42.964713+00:00',NULL);
INSERT INTO "aliases" VALUES('embedder','previous','sha256:embedder-0','2026-12-06T10:46:43.628831+00:00','a52da253f63021699e4ded9d63b99075a475a241f7aa258336528039599b9bd9');
INSERT INTO "aliases" VALUES('generator','previous','sha256:generator-1','2026-12-06T10:46:43.653025+00:00',NULL);
INSERT INTO "aliases" VALUES('alignment','previous','sha256:alignment-0','2026-12-06T10:46:43.663534+00:00','3e1d436c1e851d4bce19c71a474ca415641543b26bf320d8b94f32dbe37ecb32');
CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (length(kind) > 0),
        component TEXT NOT NULL CHECK (length(component) > 0),
        path TEXT NOT NULL,
        fingerprint TEXT UNIQUE NOT NULL CHECK (length(fingerprint) > 0),
        parent_fingerprint TEXT NULL,
        metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
        created_at TEXT NOT NULL);
INSERT INTO "artifacts" VALUES(1,'embedder','embedder','embedder-0','sha256:embedder-0',NULL,'{"i": 0}','2026-12-06T10:46:42.881456+00:00');
INSERT INTO "artifacts" VALUES(2,'adapter','embedder','embedder-1','sha256:embedder-1','sha256:embedder-0','{"i": 1}','2026-12-06T10:46:42.889216+00:00');
INSERT INTO "artifacts" VALUES(3,'adapter','embedder','embedder-2','sha256:embedder-2','sha256:embedder-0','{"i": 2}','2026-12-06T10:46:42.893184+00:00');
INSERT INTO "artifacts" VALUES(4,'generator','generator','generator-0','sha256:generator-0',NULL,'{"i": 0}','2026-12-06T10:46:42.899073+00:00');
INSERT INTO "artifacts" VALUES(5,'adapter','generator','generator-1','sha256:generator-1','sha256:generator-0','{"i": 1}','2026-12-06T10:46:42.905240+00:00');
INSERT INTO "artifacts" VALUES(6,'adapter','generator','generator-2','sha256:generator-2','sha256:generator-0','{"i": 2}','2026-12-06T10:46:42.925241+00:00');
INSERT INTO "artifacts" VALUES(7,'alignment','alignment','alignment-0','sha256:alignment-0',NULL,'{"i": 0}','2026-12-06T10:46:42.933218+00:00');
INSERT INTO "artifacts" VALUES(8,'adapter','alignment','alignment-1','sha256:alignment-1','sha256:alignment-0','{"i": 1}','2026-12-06T10:46:42.941576+00:00');
INSERT INTO "artifacts" VALUES(9,'adapter','alignment','alignment-2','sha256:alignment-2','sha256:alignment-0','{"i": 2}','2026-12-06T10:46:42.948097+00:00');
CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('register', 'set_alias', 'promote', 'rollback')),
        component TEXT NOT NULL,
        alias TEXT NULL,
        from_fingerprint TEXT NULL,
        to_fingerprint TEXT NULL,
        verdict_sha256 TEXT NULL,
        verdict_decision TEXT NULL,
        note TEXT NULL);
INSERT INTO "history" VALUES(1,'2026-12-06T10:46:42.881553+00:00','ci@build','register','embedder',NULL,NULL,'sha256:embedder-0',NULL,NULL,'embedder at /tmp/lin/embedder-0');
INSERT INTO "history" VALUES(2,'2026-12-06T10:46:42.889257+00:00','ci@build','register','embedder',NULL,NULL,'sha256:embedder-1',NULL,NULL,'adapter at /tmp/lin/embedder-1');
INSERT INTO "history" VALUES(3,'2026-12-06T10:46:42.893231+00:00','ci@build','register','embedder',NULL,NULL,'sha256:embedder-2',NULL,NULL,'adapter at /tmp/lin/embedder-2');
INSERT INTO "history" VALUES(4,'2026-12-06T10:46:42.898141+00:00','ci@build','set_alias','embedder','production',NULL,'sha256:embedder-0',NULL,NULL,NULL);
INSERT INTO "history" VALUES(5,'2026-12-06T10:46:42.899104+00:00','ci@build','register','generator',NULL,NULL,'sha256:generator-0',NULL,NULL,'generator at /tmp/lin/generator-0');
INSERT INTO "history" VALUES(6,'2026-12-06T10:46:42.905282+00:00','ci@build','register','generator',NULL,NULL,'sha256:generator-1',NULL,NULL,'adapter at /tmp/lin/generator-1');
INSERT INTO "history" VALUES(7,'2026-12-06T10:46:42.925291+00:00','ci@build','register','generator',NULL,NULL,'sha256:generator-2',NULL,NULL,'adapter at /tmp/lin/generator-2');
INSERT INTO "history" VALUES(8,'2026-12-06T10:46:42.926154+00:00','ci@build','set_alias','generator','production',NULL,'sha256:generator-0',NULL,NULL,NULL);
INSERT INTO "history" VALUES(9,'2026-12-06T10:46:42.933255+00:00','ci@build','register','alignment',NULL,NULL,'sha256:alignment-0',NULL,NULL,'alignment at /tmp/lin/alignment-0');
INSERT INTO "history" VALUES(10,'2026-12-06T10:46:42.941619+00:00','ci@build','register','alignment',NULL,NULL,'sha256:alignment-1',NULL,NULL,'adapter at /tmp/lin/alignment-1');
INSERT INTO "history" VALUES(11,'2026-12-06T10:46:42.948134+00:00','ci@build','register','alignment',NULL,NULL,'sha256:alignment-2',NULL,NULL,'adapter at /tmp/lin/alignment-2');
INSERT INTO "history" VALUES(12,'2026-12-06T10:46:42.961238+00:00','ci@build','set_alias','alignment','production',NULL,'sha256:alignment-0',NULL,NULL,NULL);
INSERT INTO "history" VALUES(13,'2026-12-06T10:46:42.964757+00:00','ci@build','set_alias','embedder','shadow',NULL,'sha256:embedder-2',NULL,NULL,NULL);
INSERT INTO "history" VALUES(14,'2026-12-06T10:46:43.645082+00:00','ci@build','promote','embedder','production','sha256:embedder-0','sha256:embedder-1','a52da253f63021699e4ded9d63b99075a475a241f7aa258336528039599b9bd9','promote','all 2 gates passed under policy ''test''');
INSERT INTO "history" VALUES(15,'2026-12-06T10:46:43.645199+00:00','ci@build','promote','generator','production','sha256:generator-0','sha256:generator-1','a52da253f63021699e4ded9d63b99075a475a241f7aa258336528039599b9bd9','promote','all 2 gates passed under policy ''test''');
INSERT INTO "history" VALUES(16,'2026-12-06T10:46:43.653131+00:00','ci@build','rollback','generator','production','sha256:generator-1','sha256:generator-0',NULL,NULL,'manual rollback');
INSERT INTO "history" VALUES(17,'2026-12-06T10:46:43.663611+00:00','ci@build','promote','alignment','production','sha256:alignment-0','sha256:alignment-2','3e1d436c1e851d4bce19c71a474ca415641543b26bf320d8b94f32dbe37ecb32','promote','all 1 gates passed under policy ''test''');
CREATE TABLE migrations (schema_version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO "migrations" VALUES(1,'2026-12-06T10:46:42.848594+00:00');
CREATE INDEX history_by_component ON history (component, id);
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
        BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be updated'); END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
        BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be deleted'); END;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('history',17);
COMMIT;
