/*
 * Two-line element sets: parsing (checksums, Alpha-5 catalogue numbers,
 * implied-decimal fields) and formatting.
 *
 * Columns follow the NORAD/CelesTrak definition. Parsing is strict about the
 * characters a field may hold (so "nan", "inf", stray letters and
 * truncated lines are refused) but accepts the blank padding found in old
 * sets. Every refusal names the line and the field.
 */
#include "linkmodels/lm_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLE_MIN_LEN 69

/* Copies columns [c0, c1] (1-based, inclusive) of |line| into |out|, trimmed
 * of blanks. */
static void col(char *out, size_t outlen, const char *line, int c0, int c1)
{
    size_t n = 0;
    for (int c = c0; c <= c1 && n + 1 < outlen; c++) {
        out[n++] = line[c - 1];
    }
    out[n] = '\0';
    /* trim */
    size_t a = 0;
    while (out[a] == ' ') {
        a++;
    }
    size_t b = strlen(out);
    while (b > a && out[b - 1] == ' ') {
        b--;
    }
    memmove(out, out + a, b - a);
    out[b - a] = '\0';
}

/* A decimal number made only of digits, at most one '.', an optional leading
 * sign: no exponents, no "nan"/"inf". */
static int parse_plain(double *out, const char *s)
{
    const char *p = s;
    int digits = 0, dots = 0;
    if (*p == '+' || *p == '-') {
        p++;
    }
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (*p == '.') {
            dots++;
        } else {
            return -1;
        }
    }
    if (digits == 0 || dots > 1) {
        return -1;
    }
    char *end;
    *out = strtod(s, &end);
    if (*end != '\0' || !isfinite(*out)) {
        return -1;
    }
    return 0;
}

static int parse_uint(long long *out, const char *s, int maxdigits)
{
    int n = 0;
    long long v = 0;
    if (*s == '\0') {
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || ++n > maxdigits) {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* " 28098-4" style: [sign] digits [sign digit], value = .digits * 10^exp */
static int parse_implied(double *out, const char *s)
{
    char buf[32];
    const char *p = s;
    char sign = '+';
    if (*p == '+' || *p == '-') {
        sign = *p++;
    }
    while (*p == ' ') {
        p++;
    }
    size_t nd = 0;
    char mant[16];
    while (*p >= '0' && *p <= '9' && nd < 10) {
        mant[nd++] = *p++;
    }
    mant[nd] = '\0';
    if (nd == 0) {
        return -1;
    }
    char esign = '+';
    int ex = 0;
    if (*p == '+' || *p == '-') {
        esign = *p++;
        if (*p < '0' || *p > '9') {
            return -1;
        }
        ex = *p++ - '0';
    } else if (*p == ' ') {
        /* a blank exponent sign means + */
        p++;
        if (*p >= '0' && *p <= '9') {
            ex = *p++ - '0';
        }
    }
    if (*p != '\0') {
        return -1;
    }
    snprintf(buf, sizeof(buf), "%c0.%se%c%d", sign, mant, esign, ex);
    *out = strtod(buf, NULL);
    return isfinite(*out) ? 0 : -1;
}

static int checksum_of(const char *line)
{
    int sum = 0;
    for (int i = 0; i < 68; i++) {
        char c = line[i];
        if (c >= '0' && c <= '9') {
            sum += c - '0';
        } else if (c == '-') {
            sum += 1;
        }
    }
    return sum % 10;
}

/* Alpha-5: letter (A..Z without I and O) = 10..33, then four digits. */
static int parse_catnum(uint32_t *out, const char *s)
{
    long long v;
    size_t n = strlen(s);
    if (n == 0 || n > 5) {
        return -1;
    }
    if (s[0] >= 'A' && s[0] <= 'Z') {
        if (n != 5 || s[0] == 'I' || s[0] == 'O') {
            return -1;
        }
        int d = s[0] - 'A' + 10;
        if (s[0] > 'I') {
            d--;
        }
        if (s[0] > 'O') {
            d--;
        }
        if (parse_uint(&v, s + 1, 4) != 0) {
            return -1;
        }
        *out = (uint32_t)(d * 10000 + v);
        return 0;
    }
    if (parse_uint(&v, s, 5) != 0) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

void sr_elements_set_epoch(sr_elements *e, double epoch_ms)
{
    double days = floor(epoch_ms / 86400000.0);
    /* civil year of the day */
    int64_t z = (int64_t)days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) {
        y++;
    }
    double jan1 = (double)sr_days_from_civil(y, 1, 1) * 86400000.0;
    e->epoch_year = (int)y;
    e->epoch_days = 1.0 + (epoch_ms - jan1) / 86400000.0;
    e->epoch_ms = epoch_ms;
}

static double epoch_ms_of(int year, double days)
{
    return (double)sr_days_from_civil(year, 1, 1) * 86400000.0 + (days - 1.0) * 86400000.0;
}

/* Length of |s| without trailing whitespace (CR, LF, blanks). */
static size_t trimmed_len(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    return n;
}

int sr_tle_parse(sr_elements *out, const char *line0, const char *line1, const char *line2,
                 unsigned flags, char *err, size_t errlen)
{
    char f[32];
    double d;
    long long ll;
    uint32_t cat2;

    memset(out, 0, sizeof(*out));
    if (line1 == NULL || line2 == NULL) {
        sr_lm_err(err, errlen, "TLE: missing line %d", line1 == NULL ? 1 : 2);
        return SR_ERR_ELEM_FORMAT;
    }
    size_t n1 = trimmed_len(line1), n2 = trimmed_len(line2);
    if (n1 < TLE_MIN_LEN) {
        sr_lm_err(err, errlen, "TLE line 1: truncated (%zu columns, need 69)", n1);
        return SR_ERR_ELEM_FORMAT;
    }
    if (n2 < TLE_MIN_LEN) {
        sr_lm_err(err, errlen, "TLE line 2: truncated (%zu columns, need 69)", n2);
        return SR_ERR_ELEM_FORMAT;
    }
    if (n1 > TLE_MIN_LEN) {
        sr_lm_err(err, errlen, "TLE line 1: %zu columns, expected 69", n1);
        return SR_ERR_ELEM_FORMAT;
    }
    for (size_t i = 0; i < 69; i++) {
        if (!isprint((unsigned char)line1[i]) || !isprint((unsigned char)line2[i])) {
            sr_lm_err(err, errlen, "TLE line %d column %zu: not a printable character",
                      !isprint((unsigned char)line1[i]) ? 1 : 2, i + 1);
            return SR_ERR_ELEM_FORMAT;
        }
    }
    if (line1[0] != '1' || line1[1] != ' ') {
        sr_lm_err(err, errlen, "TLE line 1: line number: expected \"1 \"");
        return SR_ERR_ELEM_FORMAT;
    }
    if (line2[0] != '2' || line2[1] != ' ') {
        sr_lm_err(err, errlen, "TLE line 2: line number: expected \"2 \"");
        return SR_ERR_ELEM_FORMAT;
    }
    if (!(flags & SR_ELEM_NO_CHECKSUM)) {
        for (int ln = 1; ln <= 2; ln++) {
            const char *l = ln == 1 ? line1 : line2;
            if (l[68] < '0' || l[68] > '9') {
                sr_lm_err(err, errlen, "TLE line %d: checksum: column 69 is not a digit", ln);
                return SR_ERR_ELEM_FORMAT;
            }
            int want = checksum_of(l);
            if (l[68] - '0' != want) {
                sr_lm_err(err, errlen, "TLE line %d: checksum: is %c, computed %d", ln, l[68],
                          want);
                return SR_ERR_ELEM_CHECKSUM;
            }
        }
    }

    /* line 0 */
    if (line0 != NULL) {
        const char *p = line0;
        if (p[0] == '0' && p[1] == ' ') {
            p += 2;
        }
        size_t n = trimmed_len(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        if (n >= sizeof(out->name)) {
            n = sizeof(out->name) - 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (!isprint((unsigned char)p[i])) {
                sr_lm_err(err, errlen, "TLE line 0: name holds a control character");
                return SR_ERR_ELEM_FORMAT;
            }
        }
        memcpy(out->name, p, n);
        out->name[n] = '\0';
    }

    /* line 1 */
    col(f, sizeof f, line1, 3, 7);
    if (parse_catnum(&out->catnum, f) != 0) {
        sr_lm_err(err, errlen, "TLE line 1: catalogue number \"%s\" is not 5 digits or Alpha-5", f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->classification = line1[7] == ' ' ? 'U' : line1[7];
    if (!isalpha((unsigned char)out->classification)) {
        sr_lm_err(err, errlen, "TLE line 1: classification '%c' is not a letter", line1[7]);
        return SR_ERR_ELEM_FORMAT;
    }
    col(out->intldes, sizeof out->intldes, line1, 10, 17);
    col(f, sizeof f, line1, 19, 20);
    if (strlen(f) != 2 || parse_uint(&ll, f, 2) != 0) {
        sr_lm_err(err, errlen, "TLE line 1: epoch year \"%s\" is not two digits", f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->epoch_year = (int)(ll < 57 ? 2000 + ll : 1900 + ll);
    col(f, sizeof f, line1, 21, 32);
    if (parse_plain(&d, f) != 0 || f[0] == '-' || f[0] == '+' || d < 1.0 || d >= 367.0) {
        sr_lm_err(err, errlen, "TLE line 1: epoch day \"%s\" is not a day of year in [1, 367)", f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->epoch_days = d;
    out->epoch_ms = epoch_ms_of(out->epoch_year, d);
    col(f, sizeof f, line1, 34, 43);
    if (parse_plain(&d, f) != 0) {
        sr_lm_err(err, errlen, "TLE line 1: mean motion derivative \"%s\" is not a number", f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->ndot = d;
    col(f, sizeof f, line1, 45, 52);
    if (parse_implied(&d, f) != 0) {
        sr_lm_err(err, errlen,
                  "TLE line 1: mean motion second derivative \"%s\" is not an implied-decimal "
                  "number",
                  f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->nddot = d;
    col(f, sizeof f, line1, 54, 61);
    if (parse_implied(&d, f) != 0) {
        sr_lm_err(err, errlen, "TLE line 1: BSTAR \"%s\" is not an implied-decimal number", f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->bstar = d;
    col(f, sizeof f, line1, 63, 63);
    out->ephemeris_type = 0;
    if (f[0] != '\0') {
        if (parse_uint(&ll, f, 1) != 0) {
            sr_lm_err(err, errlen, "TLE line 1: ephemeris type \"%s\" is not a digit", f);
            return SR_ERR_ELEM_FORMAT;
        }
        out->ephemeris_type = (int)ll;
    }
    col(f, sizeof f, line1, 65, 68);
    out->elset_num = 0;
    if (f[0] != '\0') {
        if (parse_uint(&ll, f, 4) != 0) {
            sr_lm_err(err, errlen, "TLE line 1: element set number \"%s\" is not a number", f);
            return SR_ERR_ELEM_FORMAT;
        }
        out->elset_num = (int)ll;
    }

    /* line 2 */
    col(f, sizeof f, line2, 3, 7);
    if (parse_catnum(&cat2, f) != 0) {
        sr_lm_err(err, errlen, "TLE line 2: catalogue number \"%s\" is not 5 digits or Alpha-5", f);
        return SR_ERR_ELEM_FORMAT;
    }
    if (cat2 != out->catnum) {
        sr_lm_err(err, errlen, "TLE line 2: catalogue number %u differs from line 1 (%u)", cat2,
                  out->catnum);
        return SR_ERR_ELEM_FORMAT;
    }
    static const struct {
        int c0, c1;
        const char *name;
        double lo, hi;
        size_t off;
    } ang[] = {
        {9, 16, "inclination", 0.0, 180.0, offsetof(sr_elements, incl_deg)},
        {18, 25, "right ascension of the ascending node", 0.0, 360.0,
         offsetof(sr_elements, raan_deg)},
        {35, 42, "argument of perigee", 0.0, 360.0, offsetof(sr_elements, argp_deg)},
        {44, 51, "mean anomaly", 0.0, 360.0, offsetof(sr_elements, mean_anom_deg)},
    };
    for (size_t i = 0; i < sizeof(ang) / sizeof(ang[0]); i++) {
        col(f, sizeof f, line2, ang[i].c0, ang[i].c1);
        if (parse_plain(&d, f) != 0 || f[0] == '-' || f[0] == '+') {
            sr_lm_err(err, errlen, "TLE line 2: %s \"%s\" is not a number of degrees", ang[i].name,
                      f);
            return SR_ERR_ELEM_FORMAT;
        }
        if (d < ang[i].lo || d > ang[i].hi) {
            sr_lm_err(err, errlen, "TLE line 2: %s %g outside [%g, %g] degrees", ang[i].name, d,
                      ang[i].lo, ang[i].hi);
            return SR_ERR_ELEM_FORMAT;
        }
        *(double *)(void *)((char *)out + ang[i].off) = d;
    }
    col(f, sizeof f, line2, 27, 33);
    {
        /* implied leading decimal point; blanks inside count as zeros */
        char ebuf[16] = "0.";
        size_t k = 2;
        if (f[0] == '\0') {
            sr_lm_err(err, errlen, "TLE line 2: eccentricity is blank");
            return SR_ERR_ELEM_FORMAT;
        }
        for (int c = 27; c <= 33; c++) {
            char ch = line2[c - 1];
            if (ch == ' ') {
                ch = '0';
            }
            if (ch < '0' || ch > '9') {
                sr_lm_err(err, errlen,
                          "TLE line 2: eccentricity \"%s\" is not 7 digits (implied decimal "
                          "point)",
                          f);
                return SR_ERR_ELEM_FORMAT;
            }
            ebuf[k++] = ch;
        }
        ebuf[k] = '\0';
        out->ecc = strtod(ebuf, NULL);
    }
    col(f, sizeof f, line2, 53, 63);
    if (parse_plain(&d, f) != 0 || !(d > 0.0)) {
        sr_lm_err(err, errlen, "TLE line 2: mean motion \"%s\" is not a positive number of rev/day",
                  f);
        return SR_ERR_ELEM_FORMAT;
    }
    out->mean_motion = d;
    col(f, sizeof f, line2, 64, 68);
    out->rev_num = 0;
    if (f[0] != '\0') {
        if (parse_uint(&ll, f, 5) != 0) {
            sr_lm_err(err, errlen, "TLE line 2: revolution number \"%s\" is not a number", f);
            return SR_ERR_ELEM_FORMAT;
        }
        out->rev_num = ll;
    }
    return 0;
}

/* ---- formatting ------------------------------------------------------------- */

/* Formats |v| as the 8-column implied-decimal field " 12345-4". */
static void fmt_implied(char out[9], double v)
{
    char sign = v < 0 ? '-' : ' ';
    double a = fabs(v);
    if (a == 0.0) {
        memcpy(out, " 00000-0", 9);
        return;
    }
    int ex = (int)floor(log10(a)) + 1;
    double mant = a / pow(10.0, ex);
    long m = lround(mant * 100000.0);
    if (m >= 100000) {
        m /= 10;
        ex++;
    }
    if (ex > 9 || ex < -9) {
        memcpy(out, " 00000-0", 9);
        return;
    }
    snprintf(out, 9, "%c%05ld%c%d", sign, m, ex < 0 ? '-' : '+', abs(ex));
}

static void fmt_catnum(char out[6], uint32_t c)
{
    if (c <= 99999) {
        snprintf(out, 6, "%05u", c);
        return;
    }
    static const char letters[] = "ABCDEFGHJKLMNPQRSTUVWXYZ";
    unsigned d = c / 10000;
    snprintf(out, 6, "%c%04u", letters[d - 10], c % 10000);
}

int sr_tle_format(char line1[SR_TLE_LINE_LEN], char line2[SR_TLE_LINE_LEN], const sr_elements *e)
{
    char cat[6], nddot[9], bstar[9], ndot[16];
    if (e->catnum > 339999 || e->epoch_year < 1957 || e->epoch_year > 2056) {
        return SR_ERR_RANGE;
    }
    if (!(e->ecc >= 0.0 && e->ecc < 1.0) || !(e->mean_motion > 0 && e->mean_motion < 100) ||
        fabs(e->ndot) >= 1.0) {
        return SR_ERR_RANGE;
    }
    fmt_catnum(cat, e->catnum);
    fmt_implied(nddot, e->nddot);
    fmt_implied(bstar, e->bstar);
    /* ndot: " .00000023" / "-.00000023" */
    {
        char tmp[16];
        snprintf(tmp, sizeof tmp, "%.8f", fabs(e->ndot)); /* "0.00000023" */
        snprintf(ndot, sizeof ndot, "%c%s", e->ndot < 0 ? '-' : ' ', tmp + 1);
    }
    char intl[9];
    snprintf(intl, sizeof intl, "%-8.8s", e->intldes);
    char cls = e->classification ? e->classification : 'U';
    snprintf(line1, SR_TLE_LINE_LEN, "1 %s%c %s %02d%012.8f %s %s %s %d %4d ", cat, cls, intl,
             e->epoch_year % 100, e->epoch_days, ndot, nddot, bstar, e->ephemeris_type % 10,
             e->elset_num % 10000);
    double angs[4] = {e->incl_deg, e->raan_deg, e->argp_deg, e->mean_anom_deg};
    for (int i = 0; i < 4; i++) {
        if (!(angs[i] >= 0 && angs[i] < 360.0)) {
            angs[i] = fmod(fmod(angs[i], 360.0) + 360.0, 360.0);
        }
        if (angs[i] >= 359.99995) {
            angs[i] = 0.0;
        }
    }
    long ecc7 = lround(e->ecc * 1e7);
    if (ecc7 > 9999999) {
        ecc7 = 9999999;
    }
    snprintf(line2, SR_TLE_LINE_LEN, "2 %s %8.4f %8.4f %07ld %8.4f %8.4f %11.8f%5lld ", cat,
             angs[0], angs[1], ecc7, angs[2], angs[3], e->mean_motion,
             (long long)(e->rev_num % 100000));
    if (strlen(line1) != 69 || strlen(line2) != 69) {
        return SR_ERR_RANGE;
    }
    line1[68] = (char)('0' + checksum_of(line1));
    line2[68] = (char)('0' + checksum_of(line2));
    return 0;
}
