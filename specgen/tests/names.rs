//! Keeps the name pass honest: the names it checks must be exactly the names codegen
//! emits. For the KV example, the corpus and the near-miss spec, the generated module's
//! items must be `codegen::MODULE_ITEMS` plus the server trait, the message types and
//! the element types the pass computes; every view / mutable view must have exactly
//! `VIEW_MEMBERS` / `MUT_MEMBERS` plus the per-field accessors, raw accessors and
//! setters; the pipelines' and shared structs' extra fields must be registered. A new
//! generated item that is not registered fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use specgen::codegen::{self, elements, messages, service, Namespace};
use specgen::spec::Side;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn specs() -> Vec<PathBuf> {
    vec![
        root().join("../examples/kv/kv.spec"),
        root().join("corpus/corpus.spec"),
        root().join("corpus/near_miss.spec"),
    ]
}

fn ident_of_type(t: &syn::Type) -> Option<String> {
    match t {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// `(name, namespace)` of the module's items, and the module's items.
fn module_items(code: &str, module: &str) -> (BTreeSet<(String, Namespace)>, Vec<syn::Item>) {
    let file: syn::File = syn::parse_str(code).expect("generated code parses");
    let items = file
        .items
        .into_iter()
        .find_map(|i| match i {
            syn::Item::Mod(m) if m.ident == module => m.content.map(|(_, items)| items),
            _ => None,
        })
        .expect("the service module");
    let mut names = BTreeSet::new();
    for i in &items {
        let (name, ns) = match i {
            syn::Item::Struct(s) => (s.ident.to_string(), Namespace::Type),
            syn::Item::Enum(e) => (e.ident.to_string(), Namespace::Type),
            syn::Item::Type(t) => (t.ident.to_string(), Namespace::Type),
            syn::Item::Trait(t) => (t.ident.to_string(), Namespace::Type),
            syn::Item::Mod(m) => (m.ident.to_string(), Namespace::Type),
            syn::Item::Fn(f) => (f.sig.ident.to_string(), Namespace::Value),
            syn::Item::Const(c) => (c.ident.to_string(), Namespace::Value),
            syn::Item::Macro(m) => match &m.ident {
                Some(id) => (id.to_string(), Namespace::Macro),
                None => continue,
            },
            syn::Item::Use(u) => {
                let mut t = &u.tree;
                while let syn::UseTree::Path(p) = t {
                    t = &p.tree;
                }
                match t {
                    syn::UseTree::Rename(r) => (r.rename.to_string(), Namespace::Type),
                    syn::UseTree::Name(n) => (n.ident.to_string(), Namespace::Type),
                    other => panic!("unexpected use {}", quote::quote!(#other)),
                }
            }
            syn::Item::Impl(_) => continue,
            other => panic!("unexpected item {}", quote::quote!(#other)),
        };
        assert!(names.insert((name.clone(), ns)), "`{name}` defined twice");
    }
    (names, items)
}

/// Member names (fns and consts) of the inherent impls of `ty`.
fn impl_members(items: &[syn::Item], ty: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in items {
        let syn::Item::Impl(im) = i else { continue };
        if im.trait_.is_some() || ident_of_type(&im.self_ty).as_deref() != Some(ty) {
            continue;
        }
        for it in &im.items {
            match it {
                syn::ImplItem::Fn(f) => out.insert(f.sig.ident.to_string()),
                syn::ImplItem::Const(c) => out.insert(c.ident.to_string()),
                _ => false,
            };
        }
    }
    out
}

fn struct_fields(items: &[syn::Item], name: &str) -> BTreeSet<String> {
    items
        .iter()
        .find_map(|i| match i {
            syn::Item::Struct(s) if s.ident == name => Some(
                s.fields
                    .iter()
                    .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no struct {name}"))
}

fn set(xs: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    xs.into_iter().map(Into::into).collect()
}

#[test]
fn registered_names_are_exactly_what_codegen_emits() {
    for spec in specs() {
        let (model, _) = specgen::check::check(&spec).expect("spec is valid");
        let out = specgen::Builder::new().generate(&spec).expect("generates");
        let (actual, items) = module_items(&out.code, &model.module);

        let mut expected: BTreeSet<(String, Namespace)> = codegen::MODULE_ITEMS
            .iter()
            .map(|(n, ns)| ((*n).to_string(), *ns))
            .collect();
        expected.insert((service::trait_name(&model.schema.service), Namespace::Type));
        for mi in codegen::reachable(&model) {
            let m = &model.schema.messages[mi];
            for (suffix, _) in messages::MESSAGE_TYPES {
                expected.insert((messages::type_name(m, suffix), Namespace::Type));
            }
        }
        for el in &model.elements {
            let (t, s) = elements::type_names(&el.name);
            expected.insert((t, Namespace::Type));
            expected.insert((s, Namespace::Type));
        }
        assert_eq!(actual, expected, "{}: module items", spec.display());

        assert_eq!(
            impl_members(&items, "Method"),
            set(service::METHOD_MEMBERS.iter().copied()),
            "{}: Method",
            spec.display()
        );
        for mi in codegen::reachable(&model) {
            let m = &model.schema.messages[mi];
            let mut view = set(messages::VIEW_MEMBERS.iter().copied());
            let mut mutv = set(messages::MUT_MEMBERS.iter().copied());
            for f in &m.fields {
                if messages::has_view_accessor(f) {
                    view.insert(messages::accessor_name(&f.name));
                }
                if messages::has_mut_accessor(f) {
                    mutv.insert(messages::accessor_name(&f.name));
                }
                if messages::has_raw(f) {
                    view.insert(messages::raw_name(&f.name));
                }
                if messages::has_setter(f) {
                    mutv.insert(messages::setter_name(&f.name));
                }
            }
            let vt = messages::type_name(m, "View");
            let mt = messages::type_name(m, "Mut");
            assert_eq!(impl_members(&items, &vt), view, "{}: {vt}", spec.display());
            assert_eq!(impl_members(&items, &mt), mutv, "{}: {mt}", spec.display());
        }

        for (side, pipeline) in [
            (Side::Client, "ClientPipeline"),
            (Side::Server, "ServerPipeline"),
        ] {
            let mut extra = struct_fields(&items, pipeline);
            for ei in model.side_elements(side) {
                assert!(extra.remove(&model.elements[ei].name), "{pipeline}");
            }
            let reserved = set(service::PIPELINE_RESERVED.iter().copied());
            assert!(
                extra.is_subset(&reserved),
                "{}: {pipeline} fields {extra:?} not in PIPELINE_RESERVED",
                spec.display()
            );
        }
        for el in &model.elements {
            let (_, shared) = elements::type_names(&el.name);
            let mut extra = struct_fields(&items, &shared);
            for v in el.vars.iter().filter(|v| v.strong) {
                extra.remove(&specgen::lower::field_ident_str(&v.name));
            }
            assert_eq!(
                extra,
                set(elements::SHARED_FIELDS.iter().copied()),
                "{}: {shared}",
                spec.display()
            );
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures replay from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.next() % xs.len() as u64).unwrap_or(0);
        xs[i]
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// No two items of one scope share a name: module items, members of each inherent
/// impl, fields of each struct, methods of each trait, variants of each enum.
fn assert_no_duplicates(code: &str, module: &str, what: &str) {
    let (_, items) = module_items(code, module);
    let mut impls: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for i in &items {
        match i {
            syn::Item::Impl(im) if im.trait_.is_none() => {
                // The whole type: `Responder<'_, A>` and `Responder<'_, B>` differ.
                let self_ty = &im.self_ty;
                let ty = quote::quote!(#self_ty).to_string();
                let members = impls.entry(ty.clone()).or_default();
                for it in &im.items {
                    let name = match it {
                        syn::ImplItem::Fn(f) => f.sig.ident.to_string(),
                        syn::ImplItem::Const(c) => c.ident.to_string(),
                        _ => continue,
                    };
                    assert!(members.insert(name.clone()), "{what}: {ty}::{name} twice");
                }
            }
            syn::Item::Struct(s) => {
                let mut seen = BTreeSet::new();
                for f in &s.fields {
                    if let Some(id) = &f.ident {
                        assert!(
                            seen.insert(id.to_string()),
                            "{what}: {}.{id} twice",
                            s.ident
                        );
                    }
                }
            }
            syn::Item::Trait(t) => {
                let mut seen = BTreeSet::new();
                for it in &t.items {
                    if let syn::TraitItem::Fn(f) = it {
                        let n = f.sig.ident.to_string();
                        assert!(seen.insert(n.clone()), "{what}: {}::{n} twice", t.ident);
                    }
                }
            }
            syn::Item::Enum(e) => {
                let mut seen = BTreeSet::new();
                for v in &e.variants {
                    assert!(
                        seen.insert(v.ident.to_string()),
                        "{what}: {}::{} twice",
                        e.ident,
                        v.ident
                    );
                }
            }
            _ => {}
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Random protos built from the pieces of generated names: specgen never panics, never
/// fails with an internal error, and what it accepts has no duplicate names in any
/// scope of the generated module.
#[test]
fn random_look_alike_names_are_rejected_or_generate_distinct_items() {
    const MSG: &[&str] = &[
        "Get",
        "Set",
        "View",
        "Ref",
        "Mut",
        "Into",
        "Responder",
        "Method",
        "Tables",
        "Result",
        "Some",
        "Self",
        "Client",
        "A",
        "B",
        "_",
        "RefSeq",
        "Shared",
    ];
    const FIELD: &[&str] = &[
        "type",
        "len",
        "name",
        "name_raw",
        "set_name",
        "raw",
        "FIXED_LEN",
        "value",
        "set_value",
        "_",
        "kind",
        "as_view",
        "x",
    ];
    const TY: &[&str] = &[
        "string",
        "bool",
        "bytes",
        "uint32",
        "repeated string",
        "repeated int64",
    ];
    const SVC: &[&str] = &[
        "Svc", "S", "client", "Method", "GetView", "Result", "Tables",
    ];
    const RPC: &[&str] = &[
        "Get", "GetInto", "Get_Into", "get_into", "Type", "Self", "ALL", "Dispatch", "Set", "A_b",
        "AB", "_", "Call", "Put", "Fetch", "Scan", "Ping",
    ];
    let tmp = TempDir(std::env::temp_dir().join(format!("specgen-names-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    std::fs::create_dir_all(tmp.0.join("elements")).expect("mkdir");
    std::fs::write(
        tmp.0.join("elements/pass.appnet"),
        "req(rpc):\n    send(rpc, Down)\n\nresp(rpc):\n    send(rpc, Up)\n",
    )
    .expect("write element");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..300 {
        let mut names: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let n = format!(
                "{}{}",
                rng.pick(MSG),
                if rng.below(2) == 0 { "" } else { rng.pick(MSG) }
            );
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let mut proto = String::from("syntax = \"proto3\";\npackage np;\n");
        for n in &names {
            proto.push_str(&format!("message {n} {{\n"));
            let mut used: Vec<&str> = Vec::new();
            for k in 0..1 + rng.below(3) {
                let f = rng.pick(FIELD);
                if used.contains(&f) {
                    continue;
                }
                used.push(f);
                let ty = if rng.below(5) == 0 {
                    names[rng.below(names.len())].clone()
                } else {
                    rng.pick(TY).to_string()
                };
                proto.push_str(&format!("  {ty} {f} = {};\n", k + 1));
            }
            proto.push_str("}\n");
        }
        let svc = rng.pick(SVC);
        proto.push_str(&format!("service {svc} {{\n"));
        let mut rpcs: Vec<&str> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let r = rng.pick(RPC);
            if rpcs.contains(&r) {
                continue;
            }
            rpcs.push(r);
            let (i, o) = (
                &names[rng.below(names.len())],
                &names[rng.below(names.len())],
            );
            proto.push_str(&format!("  rpc {r}({i}) returns ({o});\n"));
        }
        proto.push_str("}\n");
        let mut spec = format!("proto \"np.proto\"\nservice {svc}\nmodule np\n\ntransport:\n");
        let mut snakes: Vec<String> = Vec::new();
        for r in &rpcs {
            let s = specgen::proto::snake(r);
            if !snakes.contains(&s) {
                spec.push_str(&format!("    {s} => unreliable()\n"));
                snakes.push(s);
            }
        }
        spec.push_str("\nchain:\n    server: pass()\n");
        std::fs::write(tmp.0.join("np.proto"), &proto).expect("write proto");
        std::fs::write(tmp.0.join("np.spec"), &spec).expect("write spec");
        let what = format!("case {case}:\n{proto}\n{spec}");
        let path = tmp.0.join("np.spec");
        let result = std::panic::catch_unwind(|| specgen::Builder::new().generate(&path));
        match result {
            Err(_) => panic!("specgen panicked on {what}"),
            Ok(Ok(out)) => {
                accepted += 1;
                assert_no_duplicates(&out.code, "np", &what);
            }
            Ok(Err(specgen::Error::Usage(e))) => panic!("internal error {e} on {what}"),
            Ok(Err(e)) => {
                if std::env::var_os("SPECGEN_SHOW").is_some() {
                    eprintln!("{e}");
                }
                rejected += 1;
            }
        }
    }
    assert!(
        accepted > 20 && rejected > 20,
        "accepted {accepted}, rejected {rejected}"
    );
}
