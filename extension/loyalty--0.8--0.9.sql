/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit
