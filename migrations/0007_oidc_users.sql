-- OpenID Connect sign-in: users from the identity provider, told apart from
-- local (password) users, and identified by the provider's issuer and
-- subject (the email may change at the provider; the subject does not).

ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'
    CHECK (source IN ('local', 'oidc'));
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
-- Users from the provider have no password.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_source_identity CHECK (
    CASE source
        WHEN 'local' THEN oidc_issuer IS NULL AND oidc_subject IS NULL AND password_hash IS NOT NULL
        ELSE oidc_issuer IS NOT NULL AND oidc_subject IS NOT NULL AND password_hash IS NULL
    END
);
CREATE UNIQUE INDEX users_oidc_identity_key ON users (oidc_issuer, oidc_subject)
    WHERE source = 'oidc';
