ALTER TABLE hookpost.queues
  DROP COLUMN IF EXISTS previous_signing_secret_until,
  DROP COLUMN IF EXISTS previous_signing_secret,
  DROP COLUMN IF EXISTS signing_secret;
