/*
 * loyalty--0.5--0.6.sql: a purchase writes less.
 *
 * - The event outbox's NOTIFY trigger is in C and reads loyalty.notify
 *   itself: it fires on every statement that writes events, a few times per
 *   purchase, and a PL/pgSQL call plus a WHEN clause cost more than the
 *   notification.
 * - purchase_line loses its index on sku.  No query of the extension uses
 *   it, and every purchase paid for it once per line, at random places in
 *   a large index.  Reports by product scan a period of purchases and join
 *   their lines by the primary key; a chain that looks lines up by SKU
 *   often can create it again (README, "Reporting on purchases").
 * - An operation's request and response stay in the operation's row
 *   (compressed) instead of going out to its TOAST table: a purchase's
 *   response is about 5 kB of JSON, 2.5 kB compressed, which with the
 *   request passed the 2 kB threshold and cost every purchase a second
 *   heap row and index entry.  Two rows still fit a page.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.6'" to load this file. \quit

DROP TRIGGER event_notify ON loyalty.event;
CREATE OR REPLACE FUNCTION loyalty.event_notify() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'event_notify';
COMMENT ON FUNCTION loyalty.event_notify() IS 'Sends NOTIFY loyalty_event (when loyalty.notify is on)';
CREATE TRIGGER event_notify AFTER INSERT ON loyalty.event
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.event_notify();

DROP INDEX loyalty.purchase_line_sku_idx;

ALTER TABLE loyalty.operation
    ALTER COLUMN request SET STORAGE MAIN,
    ALTER COLUMN response SET STORAGE MAIN;
