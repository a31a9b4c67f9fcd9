-- behavioral_profiles becomes LIST-partitioned by as_of_date, one partition per day
-- (behavioral_profiles_pYYYYMMDD), plus a DEFAULT partition for rows written by hand
-- before their day has one.
--
-- Why: a day is ~485k rows at 500k users. Replacing it as DELETE + COPY ran in one
-- session (one core) and left 485k dead tuples per hourly refresh. With partitions the
-- warehouse loads a fresh table from two sessions and swaps it in, and the old day is
-- dropped, not vacuumed (resources/partition_swap.py). The separate as_of_date index is
-- gone: the primary key (as_of_date, user_id) and partition pruning serve those lookups.
--
-- Existing rows are kept: each day already present gets its partition, then the rows move.

ALTER TABLE behavioral_profiles RENAME TO behavioral_profiles_unpartitioned;
ALTER TABLE behavioral_profiles_unpartitioned
    RENAME CONSTRAINT behavioral_profiles_pkey TO behavioral_profiles_unpartitioned_pkey;
DROP INDEX IF EXISTS behavioral_profiles_as_of_date_idx;

CREATE TABLE behavioral_profiles (
    LIKE behavioral_profiles_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (as_of_date, user_id)
) PARTITION BY LIST (as_of_date);

CREATE TABLE behavioral_profiles_default PARTITION OF behavioral_profiles DEFAULT;

DO $$
DECLARE
    day DATE;
BEGIN
    FOR day IN SELECT DISTINCT as_of_date FROM behavioral_profiles_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF behavioral_profiles FOR VALUES IN (%L)',
                       'behavioral_profiles_p' || to_char(day, 'YYYYMMDD'), day);
    END LOOP;
END
$$;

-- Whoever could read the old table (the API's role, say) can read the new one.
DO $$
DECLARE
    grant_row RECORD;
BEGIN
    FOR grant_row IN
        SELECT grantee, privilege_type FROM information_schema.role_table_grants
        WHERE table_schema = current_schema()
          AND table_name = 'behavioral_profiles_unpartitioned'
          AND grantee <> current_user
    LOOP
        EXECUTE format('GRANT %s ON behavioral_profiles TO %s', grant_row.privilege_type,
                       CASE WHEN grant_row.grantee = 'PUBLIC' THEN 'PUBLIC'
                            ELSE quote_ident(grant_row.grantee) END);
    END LOOP;
END
$$;

INSERT INTO behavioral_profiles SELECT * FROM behavioral_profiles_unpartitioned;
DROP TABLE behavioral_profiles_unpartitioned;
