/**
 * The schema, as an ordered list of migrations. Each is a list of single statements (PGlite's
 * parameterised query runs one statement at a time). Never edit an applied migration: add one.
 */
export interface Migration {
  version: string;
  statements: string[];
}

export const migrations: Migration[] = [
  {
    version: '001_initial',
    statements: [
      `CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email text NOT NULL UNIQUE CHECK (email = lower(email)),
        display_name text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin', 'handler')),
        locale text NOT NULL DEFAULT 'sv' CHECK (locale IN ('sv', 'en')),
        disabled_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE mailboxes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL CHECK (kind IN ('personal', 'shared')),
        name text NOT NULL,
        functional_email text,
        owner_user_id uuid REFERENCES users(id),
        filedrop_slug text NOT NULL UNIQUE,
        filedrop_enabled boolean NOT NULL DEFAULT true,
        require_verified_sender boolean NOT NULL DEFAULT false,
        max_delivery_bytes bigint NOT NULL DEFAULT 5000000000 CHECK (max_delivery_bytes > 0),
        max_files_per_delivery integer NOT NULL DEFAULT 100 CHECK (max_files_per_delivery > 0),
        retention_days integer NOT NULL DEFAULT 30 CHECK (retention_days > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((kind = 'personal') = (owner_user_id IS NOT NULL))
      )`,
      `CREATE UNIQUE INDEX mailboxes_one_personal_per_user ON mailboxes (owner_user_id) WHERE kind = 'personal'`,
      `CREATE TABLE mailbox_members (
        mailbox_id uuid NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role text NOT NULL DEFAULT 'handler' CHECK (role IN ('handler', 'manager')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (mailbox_id, user_id)
      )`,
      `CREATE TABLE mailbox_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        mailbox_id uuid NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        fingerprint text NOT NULL UNIQUE,
        public_key text NOT NULL,
        wrapped_private_key bytea NOT NULL,
        master_key_id text NOT NULL,
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE UNIQUE INDEX mailbox_keys_one_active ON mailbox_keys (mailbox_id) WHERE active`,
      `CREATE TABLE deliveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        mailbox_id uuid NOT NULL REFERENCES mailboxes(id),
        reference text NOT NULL UNIQUE,
        sender_email text NOT NULL,
        sender_verified boolean NOT NULL DEFAULT false,
        sender_locale text NOT NULL DEFAULT 'sv' CHECK (sender_locale IN ('sv', 'en')),
        state text NOT NULL DEFAULT 'uploading'
          CHECK (state IN ('uploading', 'submitted', 'delivered', 'rejected', 'abandoned')),
        sender_token_hash bytea NOT NULL UNIQUE,
        upload_expires_at timestamptz NOT NULL,
        max_bytes bigint NOT NULL,
        max_files integer NOT NULL,
        manifest bytea,
        reject_reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        submitted_at timestamptz,
        delivered_at timestamptz
      )`,
      `CREATE INDEX deliveries_by_mailbox ON deliveries (mailbox_id, created_at DESC)`,
      `CREATE TABLE delivery_files (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        delivery_id uuid NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        upload_id text NOT NULL UNIQUE,
        ciphertext_size bigint NOT NULL CHECK (ciphertext_size > 0),
        state text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'uploaded', 'verified', 'rejected')),
        plaintext_size bigint,
        sha256 bytea,
        position integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        uploaded_at timestamptz
      )`,
      `CREATE INDEX delivery_files_by_delivery ON delivery_files (delivery_id)`,
      `CREATE TABLE jobs (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}',
        dedupe_key text UNIQUE,
        state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
        run_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 10,
        locked_by text,
        locked_until timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
      )`,
      `CREATE INDEX jobs_ready ON jobs (run_at) WHERE state IN ('queued', 'running')`,
      `CREATE TABLE outbox (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        dedupe_key text NOT NULL UNIQUE,
        to_address text NOT NULL,
        template text NOT NULL,
        locale text NOT NULL,
        subject text NOT NULL,
        text_body text NOT NULL,
        html_body text NOT NULL,
        state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed', 'kept')),
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz
      )`,
      `CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL,
        target text,
        detail jsonb NOT NULL DEFAULT '{}',
        prev_hash bytea,
        hash bytea NOT NULL
      )`,
      `CREATE TABLE settings (
        key text PRIMARY KEY,
        value text NOT NULL
      )`,
    ],
  },
  {
    version: '002_handlers',
    statements: [
      // Bumped to end every live session of a user at once (disable, sign-out everywhere).
      `ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0`,
      `CREATE TABLE sign_in_links (
        token_hash bytea PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX sign_in_links_by_user ON sign_in_links (user_id, created_at DESC)`,
      `CREATE TABLE downloads (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        delivery_file_id uuid NOT NULL REFERENCES delivery_files(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id),
        at timestamptz NOT NULL DEFAULT now(),
        ip text,
        user_agent text
      )`,
      `CREATE INDEX downloads_by_file ON downloads (delivery_file_id, at)`,
      `CREATE TABLE delivery_views (
        delivery_id uuid NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id),
        first_viewed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (delivery_id, user_id)
      )`,
    ],
  },
  {
    version: '005_senders',
    statements: [
      // One-time codes that prove a sender reads the address they typed (lib/auth/sender-verification).
      // Only an HMAC of the code is kept, under a per-code salt and a key that is not in the database.
      `CREATE TABLE sender_codes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        mailbox_id uuid NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        email text NOT NULL CHECK (email = lower(email)),
        salt bytea NOT NULL,
        code_hash bytea NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX sender_codes_by_address ON sender_codes (mailbox_id, email, created_at DESC)`,
      // rate-limiter-flexible's RateLimiterPostgres table (lib/ratelimit); keys are hashed.
      `CREATE TABLE rate_limits (
        key varchar(255) PRIMARY KEY,
        points bigint NOT NULL DEFAULT 0,
        expire bigint
      )`,
      `CREATE INDEX rate_limits_by_expiry ON rate_limits (expire)`,
    ],
  },
  {
    version: '006_audit_indexes',
    statements: [
      // The admin audit view filters by these, newest first; without them every filter reads the whole log.
      `CREATE INDEX audit_log_by_action ON audit_log (action, id)`,
      `CREATE INDEX audit_log_by_actor ON audit_log (actor, id)`,
      `CREATE INDEX audit_log_by_target ON audit_log (target, id)`,
      `CREATE INDEX audit_log_by_at ON audit_log (at)`,
    ],
  },
];
