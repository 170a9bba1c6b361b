-- Sign-in links spent: a link works once across restarts and across API nodes. Rows go once expired.
CREATE TABLE signin_nonces (
  nonce TEXT PRIMARY KEY,
  expires_at REAL NOT NULL  -- epoch seconds
);
