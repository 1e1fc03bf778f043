"""Users, server-side sessions, login attempts (for lockout) and the audit log.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQL = """
CREATE TABLE app.users (
    user_id             serial PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username = lower(btrim(username)) AND username <> ''),
    name                text NOT NULL DEFAULT '',
    email               text NOT NULL DEFAULT '',
    role                text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    -- bcrypt hash; the plain password is never stored.
    password_hash       text NOT NULL CHECK (password_hash LIKE '$2%'),
    disabled_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

-- The cookie carries a random session id; only its SHA-256 is stored, so a copy of this
-- table cannot be replayed as cookies.
CREATE TABLE app.sessions (
    session_hash  text PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES app.users ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoked_why   text,
    client_addr   text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON app.sessions (user_id) WHERE revoked_at IS NULL;

-- Every password check, for the windowed lockout per username and per client address.
-- username is what was typed (lower-cased), whether or not such a user exists.
CREATE TABLE app.login_attempts (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    username     text NOT NULL,
    client_addr  text NOT NULL,
    succeeded    boolean NOT NULL
);
CREATE INDEX login_attempts_username_idx ON app.login_attempts (username, at DESC);
CREATE INDEX login_attempts_addr_idx ON app.login_attempts (client_addr, at DESC);

CREATE TABLE app.audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL DEFAULT '',
    action       text NOT NULL,
    target       text NOT NULL DEFAULT '',
    detail       jsonb NOT NULL DEFAULT '{}',
    client_addr  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON app.audit_log (at DESC);
CREATE INDEX audit_log_actor_idx ON app.audit_log (actor, at DESC);
CREATE INDEX audit_log_action_idx ON app.audit_log (action, at DESC);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TABLE app.audit_log, app.login_attempts, app.sessions, app.users")
