//! A list that cannot hold more items than one message may carry, so that
//! every constructible message encodes within `MAX_MESSAGE_BYTES`.

use core::ops::Deref;

use crate::message::error::MessageError;

/// At most `MAX` items.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundedList<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedList<T, MAX> {
    /// The most items one list may hold.
    pub const MAX: usize = MAX;

    /// Fails with [`MessageError::TooManyItems`] if `items` is longer than `MAX`.
    pub fn new(items: Vec<T>) -> Result<Self, MessageError> {
        if items.len() > MAX {
            return Err(MessageError::TooManyItems {
                field: "list",
                max: MAX,
            });
        }
        Ok(Self(items))
    }

    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Splits `items` into lists of at most `MAX`, in order; always at least
    /// one (possibly empty) list.
    pub fn paginate(items: Vec<T>) -> Vec<Self> {
        // MAX is a non-zero constant for every list this module defines;
        // max(1) keeps a hypothetical MAX = 0 from looping forever.
        let page = MAX.max(1);
        let mut pages = Vec::with_capacity((items.len() / page).saturating_add(1));
        let mut rest = items.into_iter().peekable();
        loop {
            pages.push(Self(rest.by_ref().take(page).collect()));
            if rest.peek().is_none() {
                return pages;
            }
        }
    }

    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Only for decoding, whose caller has checked the count.
    pub(crate) fn from_checked(items: Vec<T>) -> Self {
        Self(items)
    }
}

impl<T, const MAX: usize> Default for BoundedList<T, MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T, const MAX: usize> Deref for BoundedList<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const MAX: usize> TryFrom<Vec<T>> for BoundedList<T, MAX> {
    type Error = MessageError;
    fn try_from(items: Vec<T>) -> Result<Self, Self::Error> {
        Self::new(items)
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedList<T, MAX> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_over_its_limit_is_rejected() {
        assert!(BoundedList::<u8, 3>::new(vec![1, 2, 3]).is_ok());
        assert_eq!(
            BoundedList::<u8, 3>::new(vec![1, 2, 3, 4]),
            Err(MessageError::TooManyItems {
                field: "list",
                max: 3
            })
        );
    }

    #[test]
    fn paginate_splits_in_order_and_never_returns_nothing() {
        let pages = BoundedList::<u8, 3>::paginate((0..7).collect());
        let sizes: Vec<usize> = pages.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let flat: Vec<u8> = pages.into_iter().flat_map(|p| p.into_vec()).collect();
        assert_eq!(flat, (0..7).collect::<Vec<u8>>());
        assert_eq!(BoundedList::<u8, 3>::paginate(vec![]).len(), 1);
        assert_eq!(BoundedList::<u8, 3>::paginate(vec![1, 2, 3]).len(), 1);
    }
}
