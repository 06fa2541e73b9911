//! Being written (issue: the engine runtime); nothing here works yet.
