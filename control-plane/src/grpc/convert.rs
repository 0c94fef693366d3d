//! Domain → wire: the policy state a stream sends, as a `PolicySnapshot`.

use super::watch::PolicyState;
use corsair_agent::engine::Mode;
use corsair_proto::v1::{ControlMessage, PolicySnapshot, control_message};

/// The snapshot message for `service` in `state`.
pub(crate) fn snapshot_message(service: &str, state: &PolicyState) -> ControlMessage {
    let snapshot = match state {
        PolicyState::Absent => PolicySnapshot {
            service: service.to_owned(),
            revision: 0,
            absent: true,
            ..PolicySnapshot::default()
        },
        PolicyState::Present(policy) => {
            let spec = &policy.spec;
            PolicySnapshot {
                service: policy.service.clone(),
                revision: policy.revision,
                absent: false,
                origins: spec.origins.clone(),
                allow_methods: spec.allow_methods.clone(),
                allow_headers: spec.allow_headers.clone(),
                expose_headers: spec.expose_headers.clone(),
                allow_credentials: spec.allow_credentials,
                // Every write is compiled by the engine, which bounds it to
                // 0..=86400; the agent compiles it again on arrival.
                max_age_secs: u32::try_from(spec.max_age_secs).unwrap_or(0),
                allow_private_network: spec.allow_private_network,
                mode: match spec.mode {
                    Mode::Enforce => corsair_proto::v1::Mode::Enforce,
                    Mode::ReportOnly => corsair_proto::v1::Mode::ReportOnly,
                } as i32,
                strict: spec.strict,
                allow_insecure_http: spec.allow_insecure_http,
            }
        }
    };
    ControlMessage {
        msg: Some(control_message::Msg::Snapshot(snapshot)),
    }
}
