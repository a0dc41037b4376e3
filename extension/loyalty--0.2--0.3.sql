/*
 * loyalty--0.2--0.3.sql: the check engine.
 *
 * calculate, purchase, refund and catalog_prices; purchase facts; promotion
 * usage counters; configuration cache invalidation.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.3'" to load this file. \quit
