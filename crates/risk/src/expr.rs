//! The rule expression language: a small, typed language over transaction attributes
//! and velocity counters.
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := not ("&&" not)*
//! not     := "!" not | cmp
//! cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum | "in" list)?
//! sum     := term (("+" | "-") term)*
//! term    := atom (("*" | "/" | "%") atom)*
//! atom    := integer | "string" | true | false | attribute | "(" expr ")"
//! list    := "[" (literal ("," literal)*)? "]"
//! ```
//!
//! Integers are `i64` (money in minor units); attributes are dotted names such as
//! `amount`, `entry`, `card.count_1h`. Every expression is type-checked when the rule
//! set loads: unknown attributes, mixed types and non-boolean conditions are errors.

use std::fmt;

use crate::facts::{Attr, Facts, Type};

/// A value during evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'a str),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A literal in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

/// A type-checked expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// An integer literal.
    Int(i64),
    /// A string literal.
    Str(String),
    /// A boolean literal.
    Bool(bool),
    /// An attribute of the transaction or a counter.
    Attr(Attr),
    /// `!e`
    Not(Box<Expr>),
    /// `a op b`
    Bin(Op, Box<Expr>, Box<Expr>),
    /// `e in [..]`
    In(Box<Expr>, Vec<Literal>),
}

/// A rule expression that does not parse or type-check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {pos}: {msg}")]
pub struct ExprError {
    /// Character offset in the expression.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos, msg: &str| ExprError {
        pos,
        msg: msg.into(),
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
            let digits: String = src[start..i].chars().filter(|c| *c != '_').collect();
            let n = digits
                .parse()
                .map_err(|_| err(start, "integer out of range"))?;
            out.push((start, Tok::Int(n)));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((start, Tok::Ident(src[start..i].to_owned())));
            continue;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            if i >= b.len() {
                return Err(err(start, "unterminated string"));
            }
            out.push((start, Tok::Str(src[start + 1..i].to_owned())));
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let sym = match two {
            "||" | "&&" | "==" | "!=" | "<=" | ">=" => Some(two),
            _ => None,
        };
        if let Some(s) = sym {
            let s: &'static str = match s {
                "||" => "||",
                "&&" => "&&",
                "==" => "==",
                "!=" => "!=",
                "<=" => "<=",
                _ => ">=",
            };
            out.push((start, Tok::Sym(s)));
            i += 2;
            continue;
        }
        let s: &'static str = match c {
            b'<' => "<",
            b'>' => ">",
            b'!' => "!",
            b'+' => "+",
            b'-' => "-",
            b'*' => "*",
            b'/' => "/",
            b'%' => "%",
            b'(' => "(",
            b')' => ")",
            b'[' => "[",
            b']' => "]",
            b',' => ",",
            _ => {
                return Err(err(
                    start,
                    &format!("unexpected character {:?}", char::from(c)),
                ))
            }
        };
        out.push((start, Tok::Sym(s)));
        i += 1;
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.0)
    }

    fn err(&self, msg: impl Into<String>) -> ExprError {
        ExprError {
            pos: self.pos(),
            msg: msg.into(),
        }
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn binary(
        &mut self,
        ops: &[(&str, Op)],
        next: fn(&mut Parser) -> Result<Expr, ExprError>,
    ) -> Result<Expr, ExprError> {
        let mut left = next(self)?;
        'outer: loop {
            for (sym, op) in ops {
                if self.eat(sym) {
                    let right = next(self)?;
                    left = Expr::Bin(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("||", Op::Or)], Parser::and)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("&&", Op::And)], Parser::not)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let left = self.sum()?;
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "in") {
            self.at += 1;
            return Ok(Expr::In(Box::new(left), self.list()?));
        }
        for (sym, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(sym) {
                let right = self.sum()?;
                return Ok(Expr::Bin(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("+", Op::Add), ("-", Op::Sub)], Parser::term)
    }

    fn term(&mut self) -> Result<Expr, ExprError> {
        self.binary(
            &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
            Parser::atom,
        )
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| self.err("expression ends too early"))?;
        let pos = self.pos();
        self.at += 1;
        match tok {
            Tok::Int(n) => Ok(Expr::Int(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Ident(w) if w == "true" => Ok(Expr::Bool(true)),
            Tok::Ident(w) if w == "false" => Ok(Expr::Bool(false)),
            Tok::Ident(w) => Attr::parse(&w).map(Expr::Attr).ok_or(ExprError {
                pos,
                msg: format!("unknown attribute {w:?}"),
            }),
            Tok::Sym("(") => {
                let e = self.or()?;
                if !self.eat(")") {
                    return Err(self.err("expected )"));
                }
                Ok(e)
            }
            Tok::Sym("-") => match self.peek().cloned() {
                Some(Tok::Int(n)) => {
                    self.at += 1;
                    Ok(Expr::Int(-n))
                }
                _ => Err(ExprError {
                    pos,
                    msg: "expected a number after -".into(),
                }),
            },
            Tok::Sym(s) => Err(ExprError {
                pos,
                msg: format!("unexpected {s:?}"),
            }),
        }
    }

    fn list(&mut self) -> Result<Vec<Literal>, ExprError> {
        if !self.eat("[") {
            return Err(self.err("expected [ after in"));
        }
        let mut items = Vec::new();
        if self.eat("]") {
            return Ok(items);
        }
        loop {
            match self.peek().cloned() {
                Some(Tok::Int(n)) => items.push(Literal::Int(n)),
                Some(Tok::Str(s)) => items.push(Literal::Str(s)),
                _ => return Err(self.err("list items are numbers or strings")),
            }
            self.at += 1;
            if self.eat("]") {
                return Ok(items);
            }
            if !self.eat(",") {
                return Err(self.err("expected , or ]"));
            }
        }
    }
}

impl Expr {
    /// Parses and type-checks a condition (it must be boolean).
    pub fn parse_condition(src: &str) -> Result<Expr, ExprError> {
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            at: 0,
            end: src.len(),
        };
        let e = p.or()?;
        if p.at != p.toks.len() {
            return Err(p.err("unexpected text after the expression"));
        }
        match e.type_of()? {
            Type::Bool => Ok(e),
            t => Err(ExprError {
                pos: 0,
                msg: format!("a condition must be boolean, this is {t}"),
            }),
        }
    }

    fn type_of(&self) -> Result<Type, ExprError> {
        let mismatch = |msg: String| ExprError { pos: 0, msg };
        Ok(match self {
            Expr::Int(_) => Type::Int,
            Expr::Str(_) => Type::Str,
            Expr::Bool(_) => Type::Bool,
            Expr::Attr(a) => a.ty(),
            Expr::Not(e) => match e.type_of()? {
                Type::Bool => Type::Bool,
                t => return Err(mismatch(format!("! needs a boolean, got {t}"))),
            },
            Expr::In(e, items) => {
                let t = e.type_of()?;
                for item in items {
                    let ok = matches!(
                        (t, item),
                        (Type::Int, Literal::Int(_)) | (Type::Str, Literal::Str(_))
                    );
                    if !ok {
                        return Err(mismatch(format!("list item {item:?} does not match {t}")));
                    }
                }
                Type::Bool
            }
            Expr::Bin(op, a, b) => {
                let (ta, tb) = (a.type_of()?, b.type_of()?);
                match op {
                    Op::Or | Op::And if ta == Type::Bool && tb == Type::Bool => Type::Bool,
                    Op::Eq | Op::Ne if ta == tb => Type::Bool,
                    Op::Lt | Op::Le | Op::Gt | Op::Ge if ta == Type::Int && tb == Type::Int => {
                        Type::Bool
                    }
                    Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem
                        if ta == Type::Int && tb == Type::Int =>
                    {
                        Type::Int
                    }
                    _ => return Err(mismatch(format!("{op:?} cannot combine {ta} and {tb}"))),
                }
            }
        })
    }

    /// Every attribute the expression reads.
    pub fn attrs(&self, out: &mut Vec<Attr>) {
        match self {
            Expr::Attr(a) => out.push(*a),
            Expr::Not(e) | Expr::In(e, _) => e.attrs(out),
            Expr::Bin(_, a, b) => {
                a.attrs(out);
                b.attrs(out);
            }
            _ => {}
        }
    }

    /// Evaluates against the facts. Integer overflow and division by zero give 0.
    pub fn eval<'a>(&'a self, f: &'a Facts) -> Value<'a> {
        match self {
            Expr::Int(n) => Value::Int(*n),
            Expr::Str(s) => Value::Str(s),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Attr(a) => f.get(*a),
            Expr::Not(e) => Value::Bool(!matches!(e.eval(f), Value::Bool(true))),
            Expr::In(e, items) => {
                let v = e.eval(f);
                Value::Bool(items.iter().any(|i| match (i, v) {
                    (Literal::Int(a), Value::Int(b)) => *a == b,
                    (Literal::Str(a), Value::Str(b)) => a == b,
                    _ => false,
                }))
            }
            Expr::Bin(op, a, b) => {
                if *op == Op::And {
                    return Value::Bool(
                        a.eval(f) == Value::Bool(true) && b.eval(f) == Value::Bool(true),
                    );
                }
                if *op == Op::Or {
                    return Value::Bool(
                        a.eval(f) == Value::Bool(true) || b.eval(f) == Value::Bool(true),
                    );
                }
                let (x, y) = (a.eval(f), b.eval(f));
                match (op, x, y) {
                    (Op::Eq, x, y) => Value::Bool(x == y),
                    (Op::Ne, x, y) => Value::Bool(x != y),
                    (Op::Lt, Value::Int(x), Value::Int(y)) => Value::Bool(x < y),
                    (Op::Le, Value::Int(x), Value::Int(y)) => Value::Bool(x <= y),
                    (Op::Gt, Value::Int(x), Value::Int(y)) => Value::Bool(x > y),
                    (Op::Ge, Value::Int(x), Value::Int(y)) => Value::Bool(x >= y),
                    (Op::Add, Value::Int(x), Value::Int(y)) => {
                        Value::Int(x.checked_add(y).unwrap_or(0))
                    }
                    (Op::Sub, Value::Int(x), Value::Int(y)) => {
                        Value::Int(x.checked_sub(y).unwrap_or(0))
                    }
                    (Op::Mul, Value::Int(x), Value::Int(y)) => {
                        Value::Int(x.checked_mul(y).unwrap_or(0))
                    }
                    (Op::Div, Value::Int(x), Value::Int(y)) => {
                        Value::Int(x.checked_div(y).unwrap_or(0))
                    }
                    (Op::Rem, Value::Int(x), Value::Int(y)) => {
                        Value::Int(x.checked_rem(y).unwrap_or(0))
                    }
                    _ => Value::Bool(false),
                }
            }
        }
    }
}
