-- LLM campaign copy: the copy written per campaign and partition, and the prompt-hash cache
-- that keeps a re-materialization from paying for the same answer twice.
-- Runs unchanged on DuckDB and PostgreSQL; the runner sets the schema (search_path).

-- One row per campaign and as_of day, replaced with the partition. copy_source says who
-- wrote it: 'llm' (a call made in this run), 'cache' (an earlier validated answer) or
-- 'template' (deterministic fallback; fallback_reason says why, model is NULL).
-- tokens_in/out and created_at describe the copy as produced, so cached rows repeat the
-- original figures; what a run spent is in the asset's metadata.
CREATE TABLE IF NOT EXISTS campaign_copy (
    as_of_date DATE NOT NULL,
    campaign_id TEXT NOT NULL,
    headline TEXT NOT NULL,
    email_body TEXT NOT NULL,
    ctas TEXT[] NOT NULL,
    subject_lines TEXT[] NOT NULL,
    social_copy TEXT NOT NULL,
    copy_source TEXT NOT NULL CHECK (copy_source IN ('llm', 'cache', 'template')),
    fallback_reason TEXT,
    model TEXT,
    prompt_hash TEXT NOT NULL,
    prompt_template_version TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of_date, campaign_id)
);

-- Validated LLM copy by prompt hash (sha256 of template version, model, sampling
-- parameters and messages). Only validated answers are stored, never template copy.
-- response_json holds the copy fields: headline, email_body, ctas, subject_lines, social_copy.
CREATE TABLE IF NOT EXISTS llm_copy_cache (
    prompt_hash TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response_json JSON NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
