//! Multiplicative updates for the Frobenius loss.
//!
//! D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 13, 2001:
//! `F <- F * A / (F G)` elementwise, with A the product of X and the other factor and G the
//! other factor's Gram matrix. The loss never increases. The denominator is floored at the
//! machine epsilon of f32 (as scikit-learn does) so that a zero never divides; an entry that is
//! zero stays zero, so start from an init without zeros (nndsvda, random).

use ndarray::{Array2, ArrayBase, DataMut, Ix2, Zip};

use super::linalg::{matmul, view};
use crate::Float;

/// Updates `f` in place once. `denominator` is scratch space of `f`'s shape; `l1` is an L1
/// penalty weight, added to the denominator as scikit-learn does.
pub(crate) fn update<T: Float, S: DataMut<Elem = T>>(
    f: &mut ArrayBase<S, Ix2>,
    a: &Array2<T>,
    g: &Array2<T>,
    denominator: &mut Array2<T>,
    l1: f64,
) {
    {
        let f_view = f.view();
        let g_view = g.view();
        matmul(denominator, view(&f_view), view(&g_view));
    }
    let floor = T::from_f64(f32::EPSILON as f64);
    let l1 = T::from_f64(l1);
    Zip::from(f)
        .and(a)
        .and(&*denominator)
        .par_for_each(|f, &a, &d| *f = *f * a / (d + l1).max_of(floor));
}
