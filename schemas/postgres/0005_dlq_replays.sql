-- Dead letters re-injected by `tapeflow dlq replay` (docs/bad-input.md, "Replaying dead
-- letters"): one row per letter, the first replay wins, so a replay run again (or twice by
-- mistake) re-injects nothing twice. `letter_id` is the letter's identity: its origin
-- (topic/partition/offset) for a record that did not decode, a digest of the refused rows for
-- a store's refusal; the same letter written twice to the dead-letter topic (at least once)
-- has one identity.

CREATE TABLE IF NOT EXISTS dlq_replays (
    letter_id       TEXT PRIMARY KEY,
    reason          TEXT NOT NULL,
    source          TEXT NOT NULL,      -- the topic or store the letter came from
    target          TEXT NOT NULL,      -- where it was re-injected: a topic or a store
    dlq_partition   INTEGER NOT NULL,   -- where the replayed letter is on the dead-letter topic
    dlq_offset      BIGINT NOT NULL,
    replayed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
