//===- poly-approx-dump.cpp - print certified approximations of e^x ------===//
//
// Part of the ropeattn project.
//
//===----------------------------------------------------------------------===//
//
// Prints mlir::ropeattn::poly's coefficients and bounds, for
// scripts/poly_bounds_check.py and the tables of docs/Polynomial.md.
//
//   poly-approx-dump --family=taylor --degree=4 --beta=1
//       one JSON object; comma lists (--family=taylor,minimax,
//       --degree=1-10,12 --beta=0.5,1) give a JSON array of every combination
//   poly-approx-dump --least --family=minimax --beta=2 --eps=1e-6
//                    [--max-degree=16]
//       the least-degree approximation as JSON ("null" if none)
//   poly-approx-dump --bounds --delta=1e-3
//       {"delta", "output_bound", "lse_bound"}
//   poly-approx-dump --beta-limit --degree=4 --eps=1e-3
//       {"degree", "eps", "beta_limit"} (Taylor)
//   poly-approx-dump --table=delta|tightness|least
//       the Markdown tables of docs/Polynomial.md
//   poly-approx-dump --candidate --family=minimax --degree=3 --eps=1e-3
//       the compiled candidate of ropeattn-expand-polynomial
//       (cost::polyCandidate): the fit on its widest range as JSON
//       ("null" if none)
//
//===----------------------------------------------------------------------===//

#include "ropeattn/Dialect/RopeAttn/Utils/CostModel.h"
#include "ropeattn/Dialect/RopeAttn/Utils/PolynomialApprox.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace mlir::ropeattn::poly;

namespace {

const std::vector<double> kTableBetas = {0.25, 0.5, 1, 2, 4, 8};
const std::vector<Family> kFamilies = {Family::Taylor, Family::Chebyshev,
                                       Family::Minimax};

[[noreturn]] void fail(const std::string &msg) {
  std::fprintf(stderr, "poly-approx-dump: error: %s\n", msg.c_str());
  std::exit(1);
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos)
      return out;
    start = comma + 1;
  }
}

double parseDouble(const std::string &s, const char *what) {
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0')
    fail(std::string("bad ") + what + " '" + s + "'");
  return v;
}

int parseInt(const std::string &s, const char *what) {
  char *end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0')
    fail(std::string("bad ") + what + " '" + s + "'");
  return static_cast<int>(v);
}

/// "1-10,12" → 1, …, 10, 12.
std::vector<int> parseDegrees(const std::string &s) {
  std::vector<int> out;
  for (const std::string &item : split(s)) {
    size_t dash = item.find('-', 1);
    if (dash == std::string::npos) {
      out.push_back(parseInt(item, "degree"));
      continue;
    }
    int lo = parseInt(item.substr(0, dash), "degree");
    int hi = parseInt(item.substr(dash + 1), "degree");
    for (int g = lo; g <= hi; ++g)
      out.push_back(g);
  }
  return out;
}

/// A double as a JSON number (Python's json reads Infinity and NaN).
std::string num(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string toJson(const ExpApprox &a) {
  std::string s = "{\"family\": \"" + std::string(familyName(a.family)) +
                  "\", \"degree\": " + std::to_string(a.degree) +
                  ", \"beta\": " + num(a.beta) + ", \"coeffs\": [";
  for (size_t k = 0; k < a.coeffs.size(); ++k)
    s += (k ? ", " : "") + num(a.coeffs[k]);
  s += "], \"delta\": " + num(a.delta) +
       ", \"delta_apriori\": " + num(a.deltaApriori) +
       ", \"delta_certified\": " + num(a.deltaCertified) +
       ", \"positive\": " + (a.positive ? "true" : "false") +
       ", \"abs_sum\": " + num(a.absSum) +
       ", \"delta_derivative\": " + num(derivativeDelta(a)) +
       ", \"output_bound\": " + num(outputErrorBound(a.delta)) +
       ", \"lse_bound\": " + num(lseErrorBound(a.delta)) + "}";
  return s;
}

/// max over a uniform grid of 200001 points of |p(x)e^{−x} − 1|, p by Horner
/// in long double (rounding ≤ 1e-18 relative here), e^x by expl.
double measuredMax(const ExpApprox &a) {
  const int n = 200000;
  long double worst = 0;
  for (int i = 0; i <= n; ++i) {
    long double x = -a.beta + 2.0L * a.beta * i / n;
    long double p = 0;
    for (size_t k = a.coeffs.size(); k-- > 0;)
      p = p * x + a.coeffs[k];
    long double r = std::fabs(p * std::exp(-x) - 1);
    if (r > worst)
      worst = r;
  }
  return static_cast<double>(worst);
}

void printHeader() {
  std::printf("| g |");
  for (double b : kTableBetas)
    std::printf(" β = %g |", b);
  std::printf("\n|---|");
  for (size_t i = 0; i < kTableBetas.size(); ++i)
    std::printf("---|");
  std::printf("\n");
}

void printTable(const std::string &kind) {
  if (kind == "least") {
    const std::vector<double> epss = {1e-2, 1e-3, 1e-4, 1e-6, 1e-8};
    std::printf("| ε | family |");
    for (double b : kTableBetas)
      std::printf(" β = %g |", b);
    std::printf("\n|---|---|");
    for (size_t i = 0; i < kTableBetas.size(); ++i)
      std::printf("---|");
    std::printf("\n");
    for (double eps : epss)
      for (Family f : kFamilies) {
        std::printf("| %g | %s |", eps, familyName(f));
        for (double b : kTableBetas) {
          auto a = leastDegree(f, b, eps, kMaxDegree);
          if (a)
            std::printf(" %d |", a->degree);
          else
            std::printf(" — |");
        }
        std::printf("\n");
      }
    return;
  }
  if (kind != "delta" && kind != "tightness")
    fail("unknown table '" + kind + "' (delta, tightness, least)");
  for (Family f : kFamilies) {
    std::printf("\n%s\n\n", familyName(f));
    printHeader();
    for (int g = 0; g <= kMaxDegree; ++g) {
      std::printf("| %d |", g);
      for (double b : kTableBetas) {
        ExpApprox a = approximate(f, g, b);
        if (kind == "delta") {
          std::printf(" %.3e%s |", a.delta, a.positive ? "" : " (p≯0)");
        } else {
          std::printf(" %.4f |", measuredMax(a) / a.delta);
        }
      }
      std::printf("\n");
    }
  }
}

} // namespace

int main(int argc, char **argv) {
  std::string families = "taylor", degrees, betas, eps, delta, table;
  int maxDegree = kMaxDegree;
  bool least = false, bounds = false, betaLimit = false, candidate = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char *name) -> const char * {
      size_t len = std::strlen(name);
      if (arg.compare(0, len, name) == 0 && arg.size() > len && arg[len] == '=')
        return arg.c_str() + len + 1;
      return nullptr;
    };
    if (const char *v = value("--family"))
      families = v;
    else if (const char *v = value("--degree"))
      degrees = v;
    else if (const char *v = value("--beta"))
      betas = v;
    else if (const char *v = value("--eps"))
      eps = v;
    else if (const char *v = value("--delta"))
      delta = v;
    else if (const char *v = value("--max-degree"))
      maxDegree = parseInt(v, "max-degree");
    else if (const char *v = value("--table"))
      table = v;
    else if (arg == "--least")
      least = true;
    else if (arg == "--bounds")
      bounds = true;
    else if (arg == "--beta-limit")
      betaLimit = true;
    else if (arg == "--candidate")
      candidate = true;
    else if (arg == "--help" || arg == "-h") {
      std::printf("usage: poly-approx-dump --family=F[,F] --degree=G[-G][,G] "
                  "--beta=B[,B]\n       poly-approx-dump --least --family=F "
                  "--beta=B --eps=E [--max-degree=G]\n       poly-approx-dump "
                  "--bounds --delta=D\n       poly-approx-dump --beta-limit "
                  "--degree=G --eps=E\n       poly-approx-dump "
                  "--table=delta|tightness|least\n       poly-approx-dump "
                  "--candidate --family=F --degree=G --eps=E\n");
      return 0;
    } else
      fail("unknown argument '" + arg + "' (see --help)");
  }

  if (!table.empty()) {
    printTable(table);
    return 0;
  }
  if (bounds) {
    double d = parseDouble(delta, "delta");
    std::printf("{\"delta\": %s, \"output_bound\": %s, \"lse_bound\": %s}\n",
                num(d).c_str(), num(outputErrorBound(d)).c_str(),
                num(lseErrorBound(d)).c_str());
    return 0;
  }
  if (betaLimit) {
    int g = parseInt(degrees, "degree");
    double e = parseDouble(eps, "eps");
    std::printf("{\"degree\": %d, \"eps\": %s, \"beta_limit\": %s}\n", g,
                num(e).c_str(), num(taylorBetaLimit(g, e)).c_str());
    return 0;
  }

  std::vector<Family> fams;
  for (const std::string &name : split(families)) {
    auto f = parseFamily(name);
    if (!f)
      fail("unknown family '" + name + "' (taylor, chebyshev, minimax)");
    fams.push_back(*f);
  }
  if (candidate) {
    if (fams.size() != 1)
      fail("--candidate takes one family");
    int g = parseInt(degrees, "degree");
    auto c = mlir::ropeattn::cost::polyCandidate(fams[0], g,
                                                 parseDouble(eps, "eps"));
    // The same fit, with every field of the other modes.
    std::printf("%s\n", c ? toJson(approximate(fams[0], g, c->betaMax)).c_str()
                          : "null");
    return 0;
  }
  std::vector<double> bs;
  for (const std::string &b : split(betas))
    bs.push_back(parseDouble(b, "beta"));

  if (least) {
    if (fams.size() != 1 || bs.size() != 1)
      fail("--least takes one family and one beta");
    auto a = leastDegree(fams[0], bs[0], parseDouble(eps, "eps"), maxDegree);
    std::printf("%s\n", a ? toJson(*a).c_str() : "null");
    return 0;
  }

  std::vector<std::string> out;
  for (Family f : fams)
    for (int g : parseDegrees(degrees))
      for (double b : bs) {
        if (!isSupported(g, b))
          fail("unsupported degree " + std::to_string(g) + " / beta " + num(b) +
               " (0 <= degree <= " + std::to_string(kMaxDegree) +
               ", 0 <= beta <= " + num(kMaxBeta) + ")");
        out.push_back(toJson(approximate(f, g, b)));
      }
  if (out.size() == 1) {
    std::printf("%s\n", out[0].c_str());
    return 0;
  }
  std::printf("[\n");
  for (size_t i = 0; i < out.size(); ++i)
    std::printf("  %s%s\n", out[i].c_str(), i + 1 < out.size() ? "," : "");
  std::printf("]\n");
  return 0;
}
