-- Signed deliveries (Standard Webhooks). During a rotation the previous secret keeps signing until
-- previous_signing_secret_until, so receivers can switch over without dropping a delivery.
ALTER TABLE hookpost.queues
  ADD COLUMN signing_secret text CONSTRAINT queues_signing_secret_check CHECK (signing_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  ADD COLUMN previous_signing_secret text,
  ADD COLUMN previous_signing_secret_until timestamptz;
