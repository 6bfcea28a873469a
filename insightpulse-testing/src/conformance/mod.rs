//! The conformance suite: the one specification every backend is checked
//! against.
//!
//! Rule guarded here: a behaviour is specified once, as a case in this
//! module, and [`conformance_tests!`](crate::conformance_tests) runs every
//! case against any backend — the in-memory fake and PostgreSQL alike. A
//! divergence between backends is a bug in whichever one is wrong, never a
//! reason to special-case a test.
//!
//! Each case is `pub async fn case(h: Harness)`: it builds its world through
//! the public traits (see [`crate::fixtures`]), moves time only through
//! `h.clock`, and matches errors by variant and their typed parts (entity,
//! field, requirement, credential and reason), never by message — except
//! `error`, which pins the messages themselves.
//!
//! ```ignore
//! // memory backend (insightpulse-testing/tests/it/main.rs):
//! insightpulse_testing::conformance_tests!(#[tokio::test] () => insightpulse_testing::memory::harness());
//! // postgres backend:
//! insightpulse_testing::conformance_tests!(
//!     #[sqlx::test(migrator = "insightpulse_postgres::MIGRATOR")] (pool: sqlx::PgPool) => crate::harness(pool).await
//! );
//! ```

pub mod audit;
pub mod error;
pub mod idempotency;
pub mod jobs;
pub mod outbox;
pub mod privacy;
pub mod projects;
pub mod tenancy;

use insightpulse_core::{ManualClock, Repos};
use std::sync::Arc;

/// What a case runs against: one backend's repositories, all reading time
/// from `clock`.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The backend under test.
    pub repos: Repos,
    /// The clock the backend reads; cases move it with `advance`.
    pub clock: Arc<ManualClock>,
}

/// Asserts that `$result` is an `Err` matching `$pattern` (an
/// `insightpulse_core::Error` pattern), printing what came back otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err(e) if matches!(e, $pattern) => {}
            other => panic!(
                "expected Err({}), got {:?} at {}:{}",
                stringify!($pattern),
                other,
                file!(),
                line!()
            ),
        }
    };
}
pub(crate) use assert_err;

/// Generates one test per conformance case for a backend.
///
/// Syntax: `conformance_tests!(#[test_attribute] (test fn args) => harness_expression);`
/// The harness expression is evaluated inside each (async) test function, so
/// it may use the test's arguments and `.await`. The generated tests live in
/// modules `tenancy`, `projects`, `audit`, `privacy`, `error`,
/// `idempotency` and `outbox` of the invoking module.
///
/// ```ignore
/// insightpulse_testing::conformance_tests!(#[tokio::test] () => insightpulse_testing::memory::harness());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (#[$attr:meta] $args:tt => $make:expr $(,)?) => {
        $crate::__conformance_cases!([#[$attr] $args => $make]);
    };
}

/// The case list, written once. Internal to [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($backend:tt) => {
        $crate::__conformance_module!($backend tenancy [
            create_tenant_makes_creator_owner_and_admin,
            create_tenant_needs_an_existing_user_and_a_free_slug,
            list_my_tenants_shows_active_memberships_by_slug,
            other_tenants_are_invisible,
            calls_without_a_tenant_are_rejected,
            update_tenant_needs_tenant_manage_and_object_settings,
            json_numbers_come_back_as_the_database_keeps_them,
            delete_tenant_is_owner_only_and_cascades,
            users_are_created_by_the_system_with_unique_emails,
            users_see_themselves_and_co_members_only,
            update_profile_changes_own_name,
            passwords_are_set_by_self_or_system_and_verified,
            sign_up_makes_user_tenant_owner_and_admin,
            sign_up_is_all_or_nothing,
            sign_up_honours_its_idempotency_key,
            sign_in_checks_email_and_password,
            authenticate_acts_with_exactly_the_keys_scope,
            authenticate_records_use_at_most_once_a_minute,
            a_keys_context_dies_with_its_tenant,
            invite_and_accept_makes_a_member_with_the_role,
            members_are_ordered_by_join_time_then_id,
            invitation_tokens_are_single_use,
            expired_invitations_are_rejected,
            revoked_invitations_are_rejected,
            malformed_and_unknown_invitation_tokens_are_rejected,
            invitations_are_bound_to_their_email,
            inviting_an_existing_member_conflicts,
            invite_needs_member_invite_and_a_valid_window,
            invite_role_must_be_visible_grantable_and_held,
            suspended_members_see_nothing_and_hold_nothing,
            removing_a_member_removes_grants_teams_and_identities,
            last_active_owner_cannot_leave,
            only_owners_act_on_owners,
            set_owner_promotes_and_demotes,
            teams_are_unique_by_slug_and_ordered,
            team_members_must_be_tenant_members,
            builtin_roles_and_catalog_are_shared_and_read_only,
            custom_roles_lifecycle,
            roles_are_ordered_by_name_then_scope,
            grants_follow_role_scope_and_tenant_boundaries,
            grants_need_role_assign_and_cannot_escalate,
            project_grant_reaches_only_its_project,
            has_permission_matrix,
            has_permission_for_api_keys,
            require_permission_guards_like_has_permission,
            get_role_by_name_follows_list_order,
            sso_providers_are_validated_and_unique,
            identities_link_subjects_to_members,
            api_key_is_shown_once_and_verifies_to_its_scope,
            api_key_creation_is_checked,
            api_key_rejections_have_reasons,
            project_scoped_key_sees_only_its_project,
            environment_scoped_key_sees_only_its_environment,
            api_keys_list_and_get_need_manage,
        ]);
        $crate::__conformance_module!($backend projects [
            project_lifecycle,
            project_slugs_are_unique_per_tenant,
            archived_projects_refuse_renames_and_environments,
            project_permissions_are_checked,
            projects_of_other_tenants_are_invisible,
            environments_are_one_per_kind_in_kind_order,
            deleting_a_project_cascades,
            deleting_an_environment_cascades_its_keys,
            bad_input_is_rejected_before_anything_is_written,
            project_changes_are_audited,
        ]);
        $crate::__conformance_module!($backend audit [
            tenant_changes_are_audited,
            membership_changes_are_audited,
            rbac_changes_are_audited,
            sso_changes_are_audited,
            api_key_changes_are_audited,
            unaudited_calls_write_nothing,
            failed_calls_write_nothing,
            diffs_never_hold_secrets,
            host_apps_record_their_own_events,
            record_refuses_bad_events_and_invisible_tenants,
            query_needs_audit_read,
            query_is_newest_first_within_the_window,
            query_filters_by_action_actor_and_target,
            query_pages_by_cursor_without_gaps_or_duplicates,
            query_rejects_bad_bounds_and_cursors,
            query_shows_the_acting_users_email,
            query_names_the_acting_key,
            verify_chain_is_intact_per_tenant,
            concurrent_writers_keep_one_chain,
        ]);
        $crate::__conformance_module!($backend privacy [
            data_policies_are_set_replaced_listed_and_deleted,
            data_policy_input_is_validated,
            data_policies_need_data_policy_manage,
            enforce_retention_is_system_only,
            audit_log_deletion_purges_the_old_prefix_in_batches,
            audit_log_purge_stops_at_the_first_recent_entry,
            audit_log_purge_never_purges_its_own_attestations,
            audit_log_anonymization_erases_old_personal_fields,
            invitation_retention_deletes_settled_old_invitations,
            invitation_retention_hashes_settled_old_emails,
            invitation_retention_honours_its_boundaries,
            retention_reports_every_policy_and_touches_nothing_else,
            consents_keep_their_full_history,
            consent_rights_and_subjects_are_checked,
            consent_input_is_validated,
            erase_user_removes_and_pseudonymizes,
            erase_user_is_self_or_system,
            last_active_owner_cannot_be_erased,
        ]);
        $crate::__conformance_module!($backend error [
            every_conflict_names_its_entity_and_field_only,
            an_unseen_tenants_rows_are_not_found_as_themselves,
            text_no_database_can_store_is_refused,
        ]);
        $crate::__conformance_module!($backend idempotency [
            repeated_creates_with_one_key_make_one_row,
            other_input_under_a_key_conflicts_on_the_key,
            keys_belong_to_their_principal,
            failed_calls_leave_their_key_unused,
            calls_without_a_key_are_not_deduplicated,
            keys_are_forgotten_after_24_hours,
            replays_return_the_row_as_it_is_now,
            concurrent_creates_with_one_key_make_one_row,
        ]);
        $crate::__conformance_module!($backend outbox [
            published_events_are_read_in_order,
            cursors_resume_reads_and_only_move_forward,
            uncommitted_reads_are_delivered_again,
            bad_input_is_refused_and_writes_nothing,
            tenants_never_see_each_others_events,
            reading_needs_event_read_and_publishing_needs_the_tenant,
            system_consumers_read_across_tenants,
            subscriptions_replay_then_follow_new_events,
            purge_removes_old_events_and_is_system_only,
        ]);
        $crate::__conformance_module!($backend jobs [
            jobs_are_enqueued_by_the_system_and_read_with_job_read,
            enqueue_input_is_validated,
            keys_replace_or_deduplicate_waiting_jobs,
            keys_never_change_a_running_job,
            cancel_jobs_by_kind_tenant_or_key,
            purge_deletes_old_finished_jobs_only,
            claims_take_due_jobs_by_priority_then_run_at,
            concurrent_claims_never_share_a_job,
            an_expired_lease_is_claimed_again,
            failures_retry_later_then_the_job_dies,
            released_jobs_come_back_unrun,
            a_big_backlog_does_not_starve_a_small_tenant,
            per_tenant_limits_cap_running_jobs,
            the_worker_runs_retries_and_buries,
            shutdown_gives_unfinished_jobs_back,
        ]);
    };
}

/// Emits `mod $module` with one test per case. Internal to [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_module {
    ([#[$attr:meta] $args:tt => $make:expr] $module:ident [$($case:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $case $args {
                    let h: $crate::conformance::Harness = $make;
                    $crate::conformance::$module::$case(h).await;
                }
            )*
        }
    };
}
