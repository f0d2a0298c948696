// `sqlx::migrate!` embeds the files under migrations/ at compile time, but cargo does not
// know to rebuild when one is added there (sqlx's documented caveat): without this, an
// incremental build after adding a migration would ship without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
