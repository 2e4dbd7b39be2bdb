//! The `#[inline_callbacks]` attribute of
//! [tokio-deferred](https://docs.rs/tokio-deferred): Twisted's
//! `@inlineCallbacks` for Rust.
//!
//! Use it through the main crate (`tokio_deferred::inline_callbacks`, on by
//! default through the `macros` feature), whose documentation has the
//! examples. The generated code names only `::tokio_deferred::...` paths.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature,
    Stmt, Token, Type, Visibility, braced,
};

/// Turns an `async fn` returning `Result<T, E>` (`E: Into<Failure>`) into a
/// plain `fn` with the same parameters returning `Deferred<T>`, started at
/// once (Twisted's `@inlineCallbacks`). See the documentation of
/// `tokio_deferred::inline_callbacks` for the rules and examples.
#[proc_macro_attribute]
pub fn inline_callbacks(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let original = TokenStream2::from(item.clone());
    let result = if !attr.is_empty() {
        Err(syn::Error::new_spanned(
            attr,
            "#[inline_callbacks] takes no arguments; write `#[inline_callbacks]`",
        ))
    } else {
        syn::parse::<Func>(item).and_then(expand)
    };
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // Keep the function as written, so the one error is all the
            // user sees (no "cannot find function" or unused-import noise).
            let mut tokens = e.to_compile_error();
            tokens.extend(original);
            tokens.into()
        }
    }
}

/// A free function, a method, or a trait method with a default body.
struct Func {
    attrs: Vec<Attribute>,
    vis: Visibility,
    defaultness: Option<Token![default]>,
    sig: Signature,
    body: Option<(Vec<Attribute>, Vec<Stmt>)>,
}

impl Parse for Func {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let defaultness: Option<Token![default]> = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            None
        } else {
            let content;
            braced!(content in input);
            let inner = content.call(Attribute::parse_inner)?;
            let stmts = content.call(Block::parse_within)?;
            Some((inner, stmts))
        };
        Ok(Func {
            attrs,
            vis,
            defaultness,
            sig,
            body,
        })
    }
}

/// How the receiver, if any, gets into the spawned future.
enum ReceiverMode {
    /// No receiver.
    None,
    /// `self`, `mut self`, `self: Arc<Self>`, ...: moved in.
    Move,
    /// `&self` or `self: &Self`: cloned, and `self` renamed in the body.
    Clone(Span),
}

fn expand(func: Func) -> syn::Result<TokenStream2> {
    let Func {
        mut attrs,
        vis,
        defaultness,
        mut sig,
        body,
    } = func;

    if sig.asyncness.take().is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "#[inline_callbacks] goes on an `async fn`: write `async fn name(..) -> Result<T, E>`; \
             it becomes `fn name(..) -> Deferred<T>`, started at once",
        ));
    }
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(
            c.span,
            "#[inline_callbacks] cannot be used on a `const fn`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            "#[inline_callbacks] cannot be used on an `extern` function",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "#[inline_callbacks] cannot be used on a variadic function",
        ));
    }
    let Some((inner_attrs, mut stmts)) = body else {
        return Err(syn::Error::new_spanned(
            &sig,
            "#[inline_callbacks] needs a function body (a trait method declaration cannot be \
             inline_callbacks; declare it as `fn name(..) -> Deferred<T>;` instead)",
        ));
    };
    attrs.extend(inner_attrs);

    // The return type: `Result<T, E>` becomes `Deferred<T>`.
    let ret_ty: Type = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                "#[inline_callbacks] needs a `-> Result<T, E>` return type (with `E: Into<Failure>`); \
                 a function with no value returns `Result<(), Failure>` (Twisted's `None`)",
            ));
        }
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let ok_ty = ok_type(&ret_ty)?;

    // The parameters: owned values are moved into the future.
    let mut receiver = ReceiverMode::None;
    let mut moves: Vec<TokenStream2> = Vec::new();
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(r) => {
                let by_ref = matches!(*r.ty, Type::Reference(_));
                let by_mut_ref =
                    matches!(&*r.ty, Type::Reference(reference) if reference.mutability.is_some());
                if by_mut_ref {
                    return Err(syn::Error::new_spanned(
                        &*r,
                        "#[inline_callbacks] cannot take `&mut self`: the returned Deferred runs \
                         after this call returns, so it cannot keep a unique borrow; take `&self` \
                         on a cheap-to-clone handle (shared state behind `Arc`, mutation behind a \
                         `Mutex`), or `self: Arc<Self>`",
                    ));
                }
                if by_ref {
                    receiver = ReceiverMode::Clone(r.self_token.span);
                } else {
                    if let Some(span) = borrow_in(&r.ty) {
                        return Err(borrow_error(span, "self"));
                    }
                    receiver = ReceiverMode::Move;
                    moves.push(quote! { let _ = &self; });
                }
            }
            FnArg::Typed(pt) => {
                if let Some(span) = borrow_in(&pt.ty) {
                    return Err(borrow_error(span, "parameter"));
                }
                match &mut *pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        let ident = pi.ident.clone();
                        let mutability = pi.mutability.take();
                        moves.push(quote! { let #mutability #ident = #ident; });
                    }
                    pat => {
                        let arg = format_ident!("__inline_callbacks_arg{}", i);
                        let original = std::mem::replace(
                            pat,
                            Pat::Ident(syn::PatIdent {
                                attrs: Vec::new(),
                                by_ref: None,
                                mutability: None,
                                ident: arg.clone(),
                                subpat: None,
                            }),
                        );
                        moves.push(quote! {
                            let #arg = #arg;
                            let #original = #arg;
                        });
                    }
                }
            }
        }
    }

    let mut prelude = TokenStream2::new();
    if let ReceiverMode::Clone(span) = receiver {
        let renamed = Ident::new("__inline_callbacks_self", span);
        let mut replace = ReplaceSelf { renamed: &renamed };
        for stmt in &mut stmts {
            replace.visit_stmt_mut(stmt);
        }
        prelude = quote_spanned! {span=>
            let #renamed = <Self as ::tokio_deferred::__private::CloneReceiver>::clone_receiver(self);
        };
        moves.insert(0, quote! { let #renamed = &#renamed; });
    }

    // Spanned at the return type, so a return type that is not a `Result`
    // is reported there (and the Deferred is created "at" the signature).
    let ret_span = ret_ty.span();
    sig.output = syn::parse_quote_spanned! {ret_span=> -> ::tokio_deferred::Deferred<#ok_ty> };
    let start = quote_spanned! {ret_span=>
        ::tokio_deferred::__private::inline_callbacks::<#ret_ty, _>(async move {
            #(#moves)*
            #(#stmts)*
        })
    };

    Ok(quote! {
        #(#attrs)*
        #vis #defaultness #sig {
            #prelude
            #start
        }
    })
}

/// The `T` of `Deferred<T>`: the first type argument of a path ending in
/// `Result` (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`); for any
/// other type (an alias such as `type Answer = Result<u32, Failure>`), the
/// `Ok` type found through the `InlineCallbacksReturn` trait, which also
/// rejects types that are not a `Result`.
fn ok_type(ret: &Type) -> syn::Result<TokenStream2> {
    match ret {
        Type::Path(tp) if tp.qself.is_none() => {
            if let Some(last) = tp.path.segments.last() {
                if last.ident.to_string().ends_with("Result") {
                    if let PathArguments::AngleBracketed(args) = &last.arguments {
                        if let Some(GenericArgument::Type(t)) = args.args.first() {
                            return Ok(quote! { #t });
                        }
                    }
                }
            }
            Ok(quote_spanned! {ret.span()=>
                <#ret as ::tokio_deferred::__private::InlineCallbacksReturn>::Ok
            })
        }
        Type::Paren(p) => ok_type(&p.elem),
        Type::Group(g) => ok_type(&g.elem),
        other => Err(syn::Error::new_spanned(
            other,
            "#[inline_callbacks] functions return `Result<T, E>` (with `E: Into<Failure>`), \
             which becomes `Deferred<T>`",
        )),
    }
}

fn borrow_error(tokens: TokenStream2, what: &str) -> syn::Error {
    syn::Error::new_spanned(
        tokens,
        format!(
            "#[inline_callbacks] cannot take a borrowed {what}: the returned Deferred runs after \
             this call returns (like a spawned task), so it must own its inputs ('static); take \
             an owned type instead (`String` for `&str`, `Vec<T>` or `Arc<[T]>` for `&[T]`, `T` or \
             `Arc<T>` for `&T`), or clone before the call"
        ),
    )
}

/// The tokens of the first borrow (a reference or a lifetime other than
/// `'static`) in a parameter type.
fn borrow_in(ty: &Type) -> Option<TokenStream2> {
    struct Finder(Option<TokenStream2>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            match &r.lifetime {
                Some(lt) if lt.ident == "static" => syn::visit::visit_type_reference(self, r),
                _ => {
                    if self.0.is_none() {
                        self.0 = Some(quote! { #r });
                    }
                }
            }
        }
        fn visit_lifetime(&mut self, lt: &'ast syn::Lifetime) {
            if lt.ident != "static" && self.0.is_none() {
                self.0 = Some(quote! { #lt });
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// Renames `self` to the cloned receiver in a method body, including inside
/// macro invocations, but not in paths such as `self::module` nor in nested
/// items (which have their own `self`).
struct ReplaceSelf<'a> {
    renamed: &'a Ident,
}

impl ReplaceSelf<'_> {
    fn tokens(&self, tokens: TokenStream2) -> TokenStream2 {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = Vec::with_capacity(trees.len());
        for (i, tt) in trees.iter().enumerate() {
            match tt {
                TokenTree::Ident(id) if id == "self" => {
                    let is_path = matches!(
                        trees.get(i + 1),
                        Some(TokenTree::Punct(p)) if p.as_char() == ':'
                    );
                    if is_path {
                        out.push(tt.clone());
                    } else {
                        out.push(TokenTree::Ident(Ident::new(
                            &self.renamed.to_string(),
                            id.span(),
                        )));
                    }
                }
                TokenTree::Group(g) => {
                    let mut group = proc_macro2::Group::new(g.delimiter(), self.tokens(g.stream()));
                    group.set_span(g.span());
                    out.push(TokenTree::Group(group));
                }
                other => out.push(other.clone()),
            }
        }
        out.into_iter().collect()
    }
}

impl VisitMut for ReplaceSelf<'_> {
    fn visit_expr_path_mut(&mut self, e: &mut syn::ExprPath) {
        if e.qself.is_none() && e.path.is_ident("self") {
            let span = e.path.segments[0].ident.span();
            e.path.segments[0].ident = Ident::new(&self.renamed.to_string(), span);
        } else {
            syn::visit_mut::visit_expr_path_mut(self, e);
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = self.tokens(std::mem::take(&mut mac.tokens));
    }

    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        // Nested items have their own `self`; only local `macro_rules!`
        // bodies may refer to the method's.
        if let syn::Item::Macro(m) = item {
            if m.mac.path.is_ident("macro_rules") {
                self.visit_macro_mut(&mut m.mac);
            }
        }
    }
}
