//! The one error type of the crate.
//!
//! Every fallible constructor or query returns [`MoeError`]. Each variant names
//! the parameter that made the request impossible ([`MoeError::parameter`]), so
//! a configuration layer can point the user at the offending key.

use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, MoeError>;

/// Why a specification, plan or query was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MoeError {
    /// An integer parameter that must be at least 1 was 0.
    #[error("parameter `{param}` must be at least 1")]
    Zero {
        /// Name of the parameter.
        param: &'static str,
    },
    /// A real-valued parameter was NaN, infinite, or outside its range.
    #[error("parameter `{param}` = {value} is invalid: must be {expected}")]
    BadReal {
        /// Name of the parameter.
        param: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// `tp * dp` does not equal the number of devices of the mesh.
    #[error(
        "parameter `tp`/`dp`: tp ({tp}) x dp ({dp}) = {product} but the mesh has {devices} devices"
    )]
    DeviceCountMismatch {
        /// Tensor-parallel degree.
        tp: usize,
        /// Data-parallel degree.
        dp: usize,
        /// `tp * dp` (saturating).
        product: usize,
        /// Devices in the mesh.
        devices: usize,
    },
    /// The number of experts is not a multiple of the number of devices (EP = N).
    #[error("parameter `experts` = {experts} is not divisible by the {devices} devices (EP = N)")]
    ExpertsNotDivisible {
        /// Routed experts of the model.
        experts: usize,
        /// Devices in the mesh.
        devices: usize,
    },
    /// An explicit tile shape does not have the required area.
    #[error("parameter `{param}` = {rows}x{cols} has area {area}, expected {expected}")]
    TileArea {
        /// Name of the parameter (`tile`).
        param: &'static str,
        /// Tile rows.
        rows: usize,
        /// Tile columns.
        cols: usize,
        /// `rows * cols`.
        area: usize,
        /// The required area (dp for FTD tiles, tp for block TP tiles).
        expected: usize,
    },
    /// A tile shape does not tile the mesh (or the wafer, for hierarchical ER).
    #[error(
        "parameter `{param}` = {rows}x{cols} does not tile the {region} of {region_rows}x{region_cols} devices"
    )]
    TileDoesNotDivide {
        /// Name of the parameter (`tile`).
        param: &'static str,
        /// Tile rows.
        rows: usize,
        /// Tile columns.
        cols: usize,
        /// What must be tiled: "mesh" or "wafer".
        region: &'static str,
        /// Rows of that region.
        region_rows: usize,
        /// Columns of that region.
        region_cols: usize,
    },
    /// No tile shape of the given area tiles the region.
    #[error(
        "parameter `{param}` = {area}: no tile of {area} devices tiles the {region} of {region_rows}x{region_cols} devices"
    )]
    NoTileShape {
        /// Name of the parameter (`tp` for block, `dp` for ER).
        param: &'static str,
        /// Required tile area.
        area: usize,
        /// What must be tiled: "mesh" or "wafer".
        region: &'static str,
        /// Rows of that region.
        region_rows: usize,
        /// Columns of that region.
        region_cols: usize,
    },
    /// A model preset name is unknown.
    #[error("parameter `model` = {name:?} is not a preset; valid names: {valid}")]
    UnknownModel {
        /// The requested name.
        name: String,
        /// Comma-separated list of the valid names.
        valid: String,
    },
    /// `top_k` exceeds the number of experts.
    #[error("parameter `top_k` = {top_k} exceeds `experts` = {experts}")]
    TopKTooLarge {
        /// Requested top-k.
        top_k: usize,
        /// Experts available.
        experts: usize,
    },
    /// A device id is outside the mesh.
    #[error("parameter `{param}` = {device} is not a device (the mesh has {devices})")]
    DeviceOutOfRange {
        /// Name of the parameter.
        param: &'static str,
        /// The rejected id.
        device: usize,
        /// Devices in the mesh.
        devices: usize,
    },
    /// An expert id is outside the model.
    #[error("parameter `{param}` = {expert} is not an expert (the model has {experts})")]
    ExpertOutOfRange {
        /// Name of the parameter.
        param: &'static str,
        /// The rejected id.
        expert: usize,
        /// Experts of the model.
        experts: usize,
    },
    /// A group index is outside `0..dp`.
    #[error("parameter `{param}` = {group} is not a DP group (there are {groups})")]
    GroupOutOfRange {
        /// Name of the parameter.
        param: &'static str,
        /// The rejected index.
        group: usize,
        /// Number of groups.
        groups: usize,
    },
    /// Two devices passed as a link are not mesh neighbours.
    #[error("parameters `a` = {a} and `b` = {b} are not neighbouring devices")]
    NotNeighbours {
        /// First device.
        a: usize,
        /// Second device.
        b: usize,
    },
    /// A token lists the same expert twice.
    #[error("parameter `tokens`: group {group}, token {token} lists expert {expert} twice")]
    DuplicateExpert {
        /// DP group of the token.
        group: usize,
        /// Index of the token in its group.
        token: usize,
        /// The repeated expert.
        expert: usize,
    },
    /// An integer parameter above its largest accepted value.
    #[error("parameter `{param}` = {value} is invalid: must be at most {max}")]
    TooLarge {
        /// Name of the parameter.
        param: &'static str,
        /// The rejected value.
        value: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// A vector argument has the wrong length.
    #[error("parameter `{param}` has length {got}, expected {expected}")]
    LengthMismatch {
        /// Name of the parameter.
        param: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The device has no free shadow slot.
    #[error("parameter `device` = {device}: no free shadow slot")]
    NoFreeSlot {
        /// The full device.
        device: usize,
    },
    /// The device already hosts (a replica of) the expert.
    #[error("parameter `device` = {device} already hosts expert {expert}")]
    AlreadyHosted {
        /// The expert.
        expert: usize,
        /// The device.
        device: usize,
    },
    /// No shadow replica of the expert lives on the device.
    #[error("parameter `device` = {device} holds no shadow replica of expert {expert}")]
    NoSuchReplica {
        /// The expert.
        expert: usize,
        /// The device.
        device: usize,
    },
    /// The experts' slots do not fit in a die's HBM.
    #[error(
        "parameter `shadow_slots_per_device`: {slots} expert slots x {layers} MoE layers x {expert_bytes} B = {need} B exceed the HBM capacity of {capacity} B"
    )]
    HbmCapacity {
        /// Expert slots per device and layer (home + shadow).
        slots: usize,
        /// MoE layers.
        layers: usize,
        /// Bytes of one expert's weights.
        expert_bytes: u64,
        /// Bytes needed.
        need: u128,
        /// Bytes available.
        capacity: u128,
    },
    /// The KV cache does not fit in a die's HBM next to the expert weights.
    #[error(
        "parameter `context` = {context}: the KV cache of {tokens} tokens per DP group over every MoE layer takes {kv_bytes} B per device, which with {weights} B of expert weights exceeds the HBM capacity of {capacity} B"
    )]
    KvCapacity {
        /// Tokens per DP group.
        tokens: u64,
        /// Context tokens per token.
        context: u64,
        /// KV-cache bytes per device.
        kv_bytes: u128,
        /// Expert-weight bytes per device.
        weights: u128,
        /// Bytes available.
        capacity: u128,
    },
    /// A context longer than the model takes.
    #[error(
        "parameter `context` = {context} exceeds the longest context {model} takes, {max} tokens"
    )]
    ContextTooLong {
        /// The rejected context, in tokens.
        context: u64,
        /// The model's name.
        model: String,
        /// Its longest context ([`crate::MoeModel::max_context_tokens`]).
        max: u64,
    },
}

impl MoeError {
    /// The name of the parameter that caused the error (for configuration layers
    /// that map it back to a key).
    pub fn parameter(&self) -> &'static str {
        match self {
            MoeError::Zero { param }
            | MoeError::BadReal { param, .. }
            | MoeError::TooLarge { param, .. }
            | MoeError::TileArea { param, .. }
            | MoeError::TileDoesNotDivide { param, .. }
            | MoeError::NoTileShape { param, .. }
            | MoeError::DeviceOutOfRange { param, .. }
            | MoeError::ExpertOutOfRange { param, .. }
            | MoeError::GroupOutOfRange { param, .. }
            | MoeError::LengthMismatch { param, .. } => param,
            MoeError::DeviceCountMismatch { .. } => "tp",
            MoeError::ExpertsNotDivisible { .. } => "experts",
            MoeError::UnknownModel { .. } => "model",
            MoeError::TopKTooLarge { .. } => "top_k",
            MoeError::NotNeighbours { .. } => "b",
            MoeError::DuplicateExpert { .. } => "tokens",
            MoeError::NoFreeSlot { .. }
            | MoeError::AlreadyHosted { .. }
            | MoeError::NoSuchReplica { .. } => "device",
            MoeError::HbmCapacity { .. } => "shadow_slots_per_device",
            MoeError::KvCapacity { .. } | MoeError::ContextTooLong { .. } => "context",
        }
    }

    /// The message without its leading clause that names the parameter
    /// (``parameter `tp` must be at least 1`` gives `must be at least 1`,
    /// ``parameter `tile` = 3x3 has area 9, expected 4`` gives
    /// `3x3 has area 9, expected 4`), for a layer that names the key
    /// itself. A message that does not start with one parameter's name
    /// (`parameters `a` = ... and `b` = ...`) is returned whole.
    pub fn reason(&self) -> String {
        let msg = self.to_string();
        let Some(rest) = msg.strip_prefix("parameter `") else {
            return msg;
        };
        // The name clause: `p`, or `p`/`q` (tp and dp together).
        let mut rest = match rest.find('`') {
            Some(i) => &rest[i + 1..],
            None => return msg,
        };
        if let Some(r) = rest.strip_prefix("/`") {
            match r.find('`') {
                Some(i) => rest = &r[i + 1..],
                None => return msg,
            }
        }
        for sep in [": ", " = ", " "] {
            if let Some(r) = rest.strip_prefix(sep) {
                return r.to_string();
            }
        }
        msg
    }
}

/// Checks that a real parameter is finite and strictly positive.
pub(crate) fn positive(param: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(MoeError::BadReal {
            param,
            value,
            expected: "finite and > 0",
        })
    }
}

/// Checks that a real parameter is finite and non-negative.
pub(crate) fn non_negative(param: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(MoeError::BadReal {
            param,
            value,
            expected: "finite and >= 0",
        })
    }
}

/// Checks that an integer parameter is at least 1.
pub(crate) fn nonzero(param: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        Err(MoeError::Zero { param })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every variant.
    fn every_variant() -> Vec<MoeError> {
        vec![
            MoeError::Zero { param: "tp" },
            MoeError::BadReal {
                param: "skew",
                value: f64::NAN,
                expected: "finite and > 0",
            },
            MoeError::DeviceCountMismatch {
                tp: 3,
                dp: 5,
                product: 15,
                devices: 16,
            },
            MoeError::ExpertsNotDivisible {
                experts: 64,
                devices: 12,
            },
            MoeError::TileArea {
                param: "tile",
                rows: 3,
                cols: 3,
                area: 9,
                expected: 4,
            },
            MoeError::TileDoesNotDivide {
                param: "tile",
                rows: 3,
                cols: 1,
                region: "mesh",
                region_rows: 4,
                region_cols: 4,
            },
            MoeError::NoTileShape {
                param: "dp",
                area: 5,
                region: "mesh",
                region_rows: 4,
                region_cols: 4,
            },
            MoeError::UnknownModel {
                name: "x".into(),
                valid: "a, b".into(),
            },
            MoeError::TopKTooLarge {
                top_k: 9,
                experts: 8,
            },
            MoeError::DeviceOutOfRange {
                param: "device",
                device: 20,
                devices: 16,
            },
            MoeError::ExpertOutOfRange {
                param: "expert",
                expert: 70,
                experts: 64,
            },
            MoeError::GroupOutOfRange {
                param: "group",
                group: 5,
                groups: 4,
            },
            MoeError::NotNeighbours { a: 0, b: 5 },
            MoeError::DuplicateExpert {
                group: 0,
                token: 1,
                expert: 2,
            },
            MoeError::LengthMismatch {
                param: "loads",
                expected: 4,
                got: 3,
            },
            MoeError::NoFreeSlot { device: 1 },
            MoeError::AlreadyHosted {
                expert: 1,
                device: 2,
            },
            MoeError::NoSuchReplica {
                expert: 1,
                device: 2,
            },
            MoeError::HbmCapacity {
                slots: 9,
                layers: 1,
                expert_bytes: 10,
                need: 90,
                capacity: 80,
            },
            MoeError::KvCapacity {
                tokens: 4,
                context: 100,
                kv_bytes: 90,
                weights: 10,
                capacity: 80,
            },
            MoeError::ContextTooLong {
                context: 200_000,
                model: "GPT-OSS-20B".into(),
                max: 131_072,
            },
        ]
    }

    #[test]
    fn reason_drops_only_the_name_clause() {
        for e in every_variant() {
            let (msg, why) = (e.to_string(), e.reason());
            assert!(msg.ends_with(&why), "{msg:?} / {why:?}");
            assert!(!why.is_empty(), "{msg:?}");
            if msg.starts_with("parameter `") {
                assert!(!why.starts_with("parameter"), "{msg:?} / {why:?}");
                assert!(
                    !why.starts_with(['=', ':', ' ', '/', '`']),
                    "{msg:?} / {why:?}"
                );
                assert!(why.len() < msg.len(), "{msg:?}");
            } else {
                assert_eq!(why, msg);
            }
        }
        let e = MoeError::DeviceCountMismatch {
            tp: 3,
            dp: 5,
            product: 15,
            devices: 16,
        };
        assert_eq!(
            e.reason(),
            "tp (3) x dp (5) = 15 but the mesh has 16 devices"
        );
        let e = MoeError::TileArea {
            param: "tile",
            rows: 3,
            cols: 3,
            area: 9,
            expected: 4,
        };
        assert_eq!(e.reason(), "3x3 has area 9, expected 4");
        assert_eq!(
            MoeError::Zero { param: "tp" }.reason(),
            "must be at least 1"
        );
    }
}
