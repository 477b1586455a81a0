//! The domain: states, transition tables, records and the action catalogue
//! ([`actions`]). No I/O lives here, so every other layer can depend on it.

pub mod actions;
pub mod backoff;
pub mod model;
pub mod params;
pub mod schedule;
pub mod secret;
pub mod states;

pub use model::*;
pub use secret::Secret;
pub use states::*;

/// Longest `status_message` we store. Upstream's column is varchar(255) and a
/// longer message once made saving a FAILED state fail (upstream ccad87ec);
/// we cut instead, on a character boundary, so a save never fails for it.
pub const STATUS_MESSAGE_MAX: usize = 255;

/// Cuts `message` to at most [`STATUS_MESSAGE_MAX`] bytes, ending with an
/// ellipsis when something was cut.
pub fn bound_status_message(message: &str) -> String {
    if message.len() <= STATUS_MESSAGE_MAX {
        return message.to_string();
    }
    let mut end = STATUS_MESSAGE_MAX - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_status_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = bound_status_message(&long);
        assert!(cut.len() <= STATUS_MESSAGE_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(bound_status_message("short"), "short");
    }
}
