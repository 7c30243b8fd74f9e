-- Job leases: a claimed job belongs to one worker of one instance until its
-- lease expires; the worker renews it while it runs. An expired lease (a
-- crashed or partitioned instance) puts the job back in the queue; a finisher
-- whose lease is gone changes nothing. Replaces "requeue everything running at
-- start", which stole live jobs from other instances.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at TIMESTAMPTZ;
-- When the current lease was taken: the start-up sweep leaves alone vectors
-- younger than any live job.
ALTER TABLE jobs ADD COLUMN claimed_at TIMESTAMPTZ;
CREATE INDEX jobs_running ON jobs (status, clinic_id, lease_expires_at);
