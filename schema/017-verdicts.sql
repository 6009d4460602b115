-- 017-verdicts: virus verdicts from clamd and spam verdicts from spamd, per
-- message and per attachment (the ingest stages "virus" and "spam",
-- `mailvault scan`).  A row per message that a scanner was asked about;
-- no row, or virus = 'unscanned', is the scan backlog.  The verdicts are
-- not part of the record's seal: a later scan with newer signatures may
-- change them, and they go with the message when it is purged.
CREATE TABLE verdict (
    message_id     bigint PRIMARY KEY REFERENCES message (id) ON DELETE CASCADE,
    virus          text CHECK (virus IN ('clean', 'infected', 'unscanned')),
    virus_name     text,           -- the signature(s) when infected, why when unscanned
    virus_at       timestamptz,
    spam           text CHECK (spam IN ('yes', 'no', 'unscanned')),
    spam_score     double precision,
    spam_threshold double precision,
    spam_reason    text,
    spam_at        timestamptz
);
CREATE INDEX verdict_virus_idx ON verdict (virus) WHERE virus <> 'clean';

CREATE TABLE part_verdict (
    message_id bigint NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    path       text NOT NULL,
    virus      text NOT NULL CHECK (virus IN ('clean', 'infected', 'unscanned')),
    virus_name text,
    PRIMARY KEY (message_id, path)
);

GRANT SELECT, INSERT, UPDATE ON verdict, part_verdict TO mailvault_ingest;
