//! Accounts and their access keys (issuing; management is in `app::identity`).

use rand::Rng;

use super::{AppContext, Role};
use crate::domain::AccountId;
use crate::error::Error;

/// A newly issued key pair. The secret exists in clear only in this value.
pub struct IssuedKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

pub(crate) fn random_chars(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// Creates the account if needed and issues an admin access key for it. Key ids look
/// like AWS's (`AKIA` + 16 base-32 characters); secrets are 40 characters.
pub async fn access_key_issue(
    ctx: &AppContext,
    account: &AccountId,
    description: &str,
) -> Result<IssuedKey, Error> {
    access_key_issue_with_role(ctx, account, description, Role::Admin).await
}

/// [`access_key_issue`] for a key with `role`.
pub async fn access_key_issue_with_role(
    ctx: &AppContext,
    account: &AccountId,
    description: &str,
    role: Role,
) -> Result<IssuedKey, Error> {
    ctx.store
        .account_ensure(account.as_str(), description)
        .await?;
    let access_key_id = format!(
        "AKIA{}",
        random_chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    );
    let secret_access_key = random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    );
    ctx.store
        .access_key_create(
            &access_key_id,
            account.as_str(),
            &ctx.secrets.seal(&secret_access_key),
            description,
            role.as_str(),
        )
        .await?;
    tracing::info!(access_key_id = %access_key_id, account = %account, role = %role, "access key issued");
    Ok(IssuedKey {
        access_key_id,
        secret_access_key,
    })
}
