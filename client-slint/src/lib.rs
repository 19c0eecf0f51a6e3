//! The Slint desktop client (filled by issue 4).
