#include "http/selector.h"

#include "storage/label_match.h"

namespace stackstream {
namespace collector {

namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9') || c == '.'; }

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  size_t pos() const { return pos_; }

  Status Error(const std::string& what) const {
    return Status::InvalidArgument("selector: " + what + " at offset " + std::to_string(pos_));
  }

  Status Name(std::string* out) {
    if (!IsNameStart(Peek())) return Error("expected a label name");
    size_t start = pos_;
    while (pos_ < s_.size() && IsNameChar(s_[pos_])) ++pos_;
    *out = s_.substr(start, pos_ - start);
    return Status::OK();
  }

  Status Op(LabelMatcher::Op* op) {
    if (Consume('=')) {
      *op = Consume('~') ? LabelMatcher::kRegex : LabelMatcher::kEq;
      return Status::OK();
    }
    if (Consume('!')) {
      if (Consume('=')) {
        *op = LabelMatcher::kNotEq;
        return Status::OK();
      }
      if (Consume('~')) {
        *op = LabelMatcher::kNotRegex;
        return Status::OK();
      }
      return Error("expected != or !~");
    }
    return Error("expected one of =, !=, =~, !~");
  }

  Status Value(std::string* out) {
    out->clear();
    char quote = Peek();
    if (quote != '"' && quote != '\'' && quote != '`') return Error("expected a quoted value");
    ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == quote) return Status::OK();
      if (c == '\\' && quote != '`') {
        if (pos_ >= s_.size()) break;
        char e = s_[pos_++];
        switch (e) {
          case '\\': out->push_back('\\'); break;
          case '"': out->push_back('"'); break;
          case '\'': out->push_back('\''); break;
          case 'n': out->push_back('\n'); break;
          case 't': out->push_back('\t'); break;
          case 'r': out->push_back('\r'); break;
          default:
            --pos_;
            return Error(std::string("unknown escape \\") + e);
        }
        continue;
      }
      out->push_back(c);
    }
    return Error("unterminated quoted value");
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

bool IsValidLabelName(const std::string& name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

Status ParseSelector(const std::string& text, std::vector<LabelMatcher>* out,
                     std::string* prefix) {
  out->clear();
  if (prefix != nullptr) prefix->clear();
  if (text.size() > kMaxSelectorBytes) {
    return Status::InvalidArgument("selector: longer than " + std::to_string(kMaxSelectorBytes) +
                                   " bytes");
  }
  Parser p(text);
  p.SkipSpace();
  if (p.AtEnd()) return Status::OK();
  if (p.Peek() != '{') {
    // Metric-like prefix ("app.cpu{...}").
    size_t start = p.pos();
    std::string name;
    Status s = p.Name(&name);
    if (!s.ok()) return p.Error("expected '{'");
    if (prefix == nullptr) {
      return Status::InvalidArgument("selector: expected '{' at offset " + std::to_string(start));
    }
    *prefix = name;
    p.SkipSpace();
    if (p.AtEnd()) return Status::OK();
  }
  if (!p.Consume('{')) return p.Error("expected '{'");
  p.SkipSpace();
  if (p.Consume('}')) {
    p.SkipSpace();
    return p.AtEnd() ? Status::OK() : p.Error("unexpected text after '}'");
  }
  for (;;) {
    LabelMatcher m;
    p.SkipSpace();
    Status s = p.Name(&m.name);
    if (!s.ok()) return s;
    p.SkipSpace();
    s = p.Op(&m.op);
    if (!s.ok()) return s;
    p.SkipSpace();
    s = p.Value(&m.value);
    if (!s.ok()) return s;
    if (m.op == LabelMatcher::kRegex || m.op == LabelMatcher::kNotRegex) {
      if (m.value.size() > kMaxRegexBytes) {
        return Status::InvalidArgument("selector: regular expression for label " + m.name +
                                       " longer than " + std::to_string(kMaxRegexBytes) +
                                       " bytes");
      }
      LabelRegex re;
      Status compiled = LabelRegex::Compile(m.value, &re);
      if (!compiled.ok()) {
        return Status::InvalidArgument("selector: label " + m.name + ": " + compiled.message());
      }
    }
    out->push_back(std::move(m));
    p.SkipSpace();
    if (p.Consume(',')) {
      p.SkipSpace();
      if (p.Consume('}')) break;  // trailing comma, as PromQL allows
      continue;
    }
    if (p.Consume('}')) break;
    return p.AtEnd() ? p.Error("missing '}'") : p.Error("expected ',' or '}'");
  }
  p.SkipSpace();
  if (!p.AtEnd()) return p.Error("unexpected text after '}'");
  return Status::OK();
}

std::string FormatSelector(const std::vector<LabelMatcher>& matchers) {
  std::string out = "{";
  for (size_t i = 0; i < matchers.size(); ++i) {
    const LabelMatcher& m = matchers[i];
    if (i > 0) out += ", ";
    out += m.name;
    switch (m.op) {
      case LabelMatcher::kEq: out += "="; break;
      case LabelMatcher::kNotEq: out += "!="; break;
      case LabelMatcher::kRegex: out += "=~"; break;
      case LabelMatcher::kNotRegex: out += "!~"; break;
    }
    out += '"';
    for (char c : m.value) {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default: out.push_back(c);
      }
    }
    out += '"';
  }
  out += "}";
  return out;
}

}  // namespace collector
}  // namespace stackstream
