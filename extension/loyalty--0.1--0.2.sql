/*
 * loyalty--0.1--0.2.sql: the points ledger.
 *
 * Operations (idempotency by operation_id), point lots and the append-only
 * ledger, balances, manual adjustments, history, expiry, maintenance and its
 * pg_cron registration.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.2'" to load this file. \quit
