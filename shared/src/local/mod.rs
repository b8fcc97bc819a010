pub mod lambda;
