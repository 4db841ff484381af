//! The review state machine: every (state, action, actor) is allowed exactly when the
//! table says so, and refused otherwise with the right reason.

use merchants::review::{next, Action, AppState, ReviewError, Who, TRANSITIONS};

#[test]
fn every_move_is_allowed_exactly_as_the_table_says() {
    let mut allowed = 0;
    for from in AppState::ALL {
        for action in Action::ALL {
            for who in Who::ALL {
                let row = TRANSITIONS
                    .iter()
                    .find(|(f, a, w, _)| *f == from && *a == action && *w == who);
                let anyone = TRANSITIONS
                    .iter()
                    .any(|(f, a, _, _)| *f == from && *a == action);
                match (next(from, action, who), row) {
                    (Ok(to), Some((_, _, _, want))) => {
                        assert_eq!(to, *want);
                        allowed += 1;
                    }
                    (Err(ReviewError::NotYours { .. }), None) => assert!(anyone),
                    (Err(ReviewError::NotNow { .. }), None) => assert!(!anyone),
                    (got, want) => {
                        panic!("{from:?} {action:?} by {who:?}: {got:?}, table {want:?}")
                    }
                }
            }
        }
    }
    assert_eq!(allowed, TRANSITIONS.len());
    // A decision is final.
    for s in [AppState::Approved, AppState::Rejected, AppState::Withdrawn] {
        assert!(s.is_final());
        for action in Action::ALL {
            for who in Who::ALL {
                assert!(next(s, action, who).is_err(), "{s:?} {action:?}");
            }
        }
    }
}

#[test]
fn the_way_through_and_back() {
    // (action, who, the state reached)
    let path = [
        (Action::Submit, Who::Applicant, AppState::Submitted),
        (Action::ChecksFail, Who::System, AppState::ChecksFailed),
        (Action::Submit, Who::Applicant, AppState::Submitted),
        (Action::ChecksPass, Who::System, AppState::ChecksPassed),
        (Action::Assign, Who::Reviewer, AppState::InReview),
        (Action::RequestInfo, Who::Reviewer, AppState::InfoRequested),
        (Action::Resubmit, Who::Applicant, AppState::Submitted),
        (Action::ChecksPass, Who::System, AppState::ChecksPassed),
        (Action::Assign, Who::Reviewer, AppState::InReview),
        (Action::Approve, Who::Reviewer, AppState::Approved),
    ];
    let mut s = AppState::Draft;
    for (action, who, want) in path {
        s = next(s, action, who).expect("allowed");
        assert_eq!(s, want);
        assert_eq!(AppState::parse(s.name()), Some(s));
    }
    // An applicant cannot approve itself; a reviewer cannot submit for it.
    assert!(matches!(
        next(AppState::InReview, Action::Approve, Who::Applicant),
        Err(ReviewError::NotYours { .. })
    ));
    assert!(matches!(
        next(AppState::Draft, Action::Submit, Who::Reviewer),
        Err(ReviewError::NotYours { .. })
    ));
}
