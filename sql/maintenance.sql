--
-- Maintenance under pg_cron.
--
-- The test cluster preloads pg_cron with cron.database_name set to this
-- database.  The install script never touches cron.*: the DBA registers the
-- job with loyalty.schedule_maintenance (or cron.schedule_in_database when
-- pg_cron lives in another database, see README).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
DROP EXTENSION IF EXISTS pg_cron;
CREATE EXTENSION loyalty;
RESET client_min_messages;

-- installing loyalty registered no job
SELECT count(*) AS cron_schemas FROM pg_namespace WHERE nspname = 'cron';

-- without pg_cron in this database: a clear error
SELECT loyalty.schedule_maintenance();

CREATE EXTENSION pg_cron;
SELECT loyalty.schedule_maintenance() > 0 AS scheduled;
SELECT jobname, schedule, command, database = current_database() AS here, active
  FROM cron.job ORDER BY jobid;

-- idempotent: scheduling again replaces the job, a new schedule updates it
SELECT loyalty.schedule_maintenance() = loyalty.schedule_maintenance('*/5 * * * *') AS same_job;
SELECT jobname, schedule, command FROM cron.job ORDER BY jobid;

-- the job's command works as a plain CALL too (one run at a time: see the
-- isolation spec maintenance_lock)
CALL loyalty.run_maintenance_proc();
SELECT loyalty.run_maintenance() - 'as_of' AS summary;

SELECT cron.unschedule('loyalty-maintenance');
DROP EXTENSION pg_cron;
