-- 035-search-stems: search vectors of the stems alone (issues 12 and 18).
--
-- Since 021 a vector held every word twice: stemmed by the language's
-- configuration (weight A) and in its exact form ('simple', weight D),
-- plus the CJK bigrams.  Measured on 3,004 linux-mips list messages
-- (19.0 MB raw; docs/search.md): the vectors took 0.66 of the raw bytes
-- and their GIN index 0.40; computing them took 0.84 ms a message, the
-- largest part of the server's work per ingested message (docs/scaling.md).
-- Without the exact forms: 0.40 and 0.33 of the raw bytes, 0.40 ms a
-- message.
--
-- What the exact forms added, and what is lost without them: a query
-- tries every configuration's stem of each word (mv_search_query, 021),
-- and the document's own configuration is among them, so every word the
-- stemmer keeps is found as before, by any of its forms.  What the stemmer
-- drops, the stop words of the message's language ("war" in a German
-- message), is no longer found by itself; a phrase still matches with the
-- stop words' places counted (PostgreSQL's phrase distances), as full-text
-- search in PostgreSQL does everywhere.  A bare English stop word was
-- already dropped from queries (021).
--
-- Queries are unchanged: their exact-form ('simple') branch now matches
-- only stems that spell the word, and still matches the vectors stored
-- before this migration; `mailvault index --rebuild` recomputes those.
CREATE OR REPLACE FUNCTION mv_search_vector_of(d text, cfg regconfig) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    latin text := d;
    cjk tsvector := ''::tsvector;
BEGIN
    IF d ~ mv_cjk_class() THEN
        latin := regexp_replace(d, mv_cjk_class() || '+', ' ', 'g');
        cjk := to_tsvector('pg_catalog.simple', mv_cjk_bigrams(left(d, 16384)));
    END IF;
    -- The stems carry weight A, as since 021: a query's stems in other
    -- languages match only stems (mv_search_query).
    RETURN setweight(to_tsvector(cfg, latin), 'A') || cjk;
END;
$$;
