-- Sign-in links spent (SQLite migration 0006): a link works once across restarts and API nodes.
CREATE TABLE signin_nonces (
  nonce text PRIMARY KEY,
  expires_at double precision NOT NULL  -- epoch seconds
);
