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
