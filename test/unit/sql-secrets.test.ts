import { describe, expect, it } from 'vitest';
import { mentionsPassword, redactSqlSecrets } from '../../policies/sql-secrets.js';

// Password literals out of SQL text that rests (recording, audit, holds, API): the plain
// `PASSWORD 'x'` form precisely, dynamic SQL (DO bodies, EXECUTE, format) conservatively.
describe('redactSqlSecrets', () => {
  it.each([
    ["ALTER ROLE a PASSWORD 'x1' VALID UNTIL '2030-01-01'", "ALTER ROLE a PASSWORD '[redacted]' VALID UNTIL '2030-01-01'"],
    ['ALTER ROLE a PASSWORD /* c */ $$x1$$', "ALTER ROLE a PASSWORD /* c */ '[redacted]'"],
    ["CREATE USER a ENCRYPTED PASSWORD E'x\\'1'", "CREATE USER a ENCRYPTED PASSWORD '[redacted]'"],
    ['select 1', 'select 1'],
  ])('plain form %j → %j', (sql, shown) => {
    expect(redactSqlSecrets(sql)).toBe(shown);
  });

  it.each([
    "DO $$ BEGIN EXECUTE format('ALTER ROLE app PASSWORD %L', 'S3CRET'); END $$",
    "DO $do$ DECLARE p text := 'S3CRET'; BEGIN EXECUTE 'ALTER ROLE app PASSWORD ' || quote_literal(p); END $do$ LANGUAGE plpgsql",
    "DO LANGUAGE plpgsql $$ BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''S3CRET'''; END $$",
    "DO $$ BEGIN EXECUTE format('ALTER ROLE app PASSWORD %L', $q$S3CRET$q$); END $$",
    "DO $$ BEGIN EXECUTE 'ALTER ROLE app ' || 'PASSWORD ' || E'\\'S3CRET\\''; END $$",
    "SELECT format('ALTER ROLE x PASSWORD %L', E'S3\\'CRET') -- S3CRET",
    "CREATE FUNCTION f() RETURNS void AS $f$ BEGIN /* S3CRET */ EXECUTE 'ALTER ROLE x PASSWORD ''S3CRET'''; END $f$ LANGUAGE plpgsql",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS 'BEGIN EXECUTE ''ALTER ROLE x PASSWORD ''''S3CRET''''''; END'",
    "ALTER ROLE a PASSWORD 'S3CRET'; DO $$ BEGIN RAISE NOTICE 'S3CRET password'; END $$",
  ])('dynamic SQL %j keeps no literal in clear', (sql) => {
    const shown = redactSqlSecrets(sql);
    expect(shown).not.toContain('S3CRET');
    expect(shown).not.toMatch(/S3\\?'?CRET/);
    expect(shown).toContain("'[redacted]'");
  });

  it('keeps the code of a DO body readable', () => {
    expect(redactSqlSecrets("DO $$ BEGIN EXECUTE format('ALTER ROLE app PASSWORD %L', 'x'); END $$")).toBe("DO $$ BEGIN EXECUTE format('[redacted]', '[redacted]'); END $$");
  });

  it('says when Bind parameters may carry a password', () => {
    expect(mentionsPassword("SELECT format('ALTER ROLE x PASSWORD %L', $1)")).toBe(true);
    expect(mentionsPassword('SELECT password_hash FROM t WHERE id = $1')).toBe(false);
  });
});
