-- The retriever plugin (by name) a clinic's /ask and /search use by default;
-- NULL means the first-party `hybrid`.
ALTER TABLE clinics ADD COLUMN retriever TEXT;
