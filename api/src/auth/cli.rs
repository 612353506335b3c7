//! `hookplane token create|list|revoke`: API tokens from the shell, for the instance's
//! operator (who holds the database credentials, so is the owner already).

use chrono::{TimeDelta, Utc};
use hookplane_store::Store;
use uuid::Uuid;

use super::{Grant, Role, issue_token};

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// What it is for (shown in lists and the audit log).
        #[arg(long)]
        name: String,
        /// The organization (slug) it acts in; leave out with `--owner`.
        #[arg(long, required_unless_present = "owner")]
        organization: Option<String>,
        /// Its role in the organization: viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// An instance owner token: admin everywhere, creates organizations.
        #[arg(long, conflicts_with = "organization")]
        owner: bool,
        /// Days until it expires (never, when left out).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id; open subscriptions made with it end within seconds.
    Revoke {
        /// The token's id (from `list`).
        id: Uuid,
    },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Viewer, Self::Operator, Self::Admin]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }))
    }
}

/// Run a token command against the store; what it prints is the command's answer.
pub async fn run(store: &Store, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            organization,
            role,
            owner,
            expires_in_days,
        } => {
            let grant = match (owner, organization) {
                (true, _) => Grant::Owner,
                (false, Some(slug)) => {
                    let organization = store
                        .organization_by_slug(&slug)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no organization {slug:?}"))?;
                    Grant::Member(organization.id, role)
                }
                (false, None) => anyhow::bail!("give --organization or --owner"),
            };
            let expires_at =
                expires_in_days.map(|days| Utc::now() + TimeDelta::days(i64::from(days)));
            let issued = issue_token(store, grant, name.trim(), expires_at, "cli").await?;
            println!("{}", issued.secret);
            eprintln!(
                "token {} ({}) created; it is shown only now",
                issued.stored.id, issued.stored.role
            );
            Ok(())
        }
        TokenCommand::List => {
            let organizations = store.organizations().await?;
            let slug = |id: Option<Uuid>| {
                id.and_then(|id| organizations.iter().find(|org| org.id == id))
                    .map_or("*", |org| org.slug.as_str())
            };
            println!("ID\tPREFIX\tORGANIZATION\tROLE\tNAME\tEXPIRES\tREVOKED\tLAST USED");
            for token in store.tokens().await? {
                let time = |at: Option<chrono::DateTime<Utc>>| {
                    at.map_or_else(|| "-".to_owned(), |at| at.to_rfc3339())
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    token.id,
                    token.prefix,
                    slug(token.organization_id),
                    token.role,
                    token.name,
                    time(token.expires_at),
                    time(token.revoked_at),
                    time(token.last_used_at),
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let token = store.revoke_token(id).await?;
            println!("revoked {} ({})", token.id, token.name);
            Ok(())
        }
    }
}
