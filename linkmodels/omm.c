/*
 * CCSDS OMM (Orbit Mean-elements Message) as CelesTrak publishes it: JSON,
 * CSV, XML and KVN, plus the auto-detecting multi-set entry point that also
 * takes 2- and 3-line TLE text.
 *
 * All four OMM forms feed one collector (struct omm_set) keyed by the CCSDS
 * keyword, so validation and messages are the same whatever the syntax. The
 * XML reader is a deliberately small, strict, bounded parser for the OMM
 * subset: elements, attributes, text, comments, the XML declaration and the
 * five predefined entities; no DTDs, no CDATA, nesting at most 16 deep.
 */
#include "linkmodels/lm_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS_DEFAULT 1000000u

/* ---- the collector ------------------------------------------------------------ */

enum {
    F_NAME,
    F_ID,
    F_EPOCH,
    F_MM,
    F_ECC,
    F_INCL,
    F_RAAN,
    F_ARGP,
    F_MA,
    F_EPHTYPE,
    F_CLASS,
    F_CATNUM,
    F_ELSET,
    F_REV,
    F_BSTAR,
    F_MMDOT,
    F_MMDDOT,
    F_COUNT
};

static const struct {
    const char *key;
    const char *units; /* accepted unit, NULL when unitless */
    int required;
} fields[F_COUNT] = {
    [F_NAME] = {"OBJECT_NAME", NULL, 0},
    [F_ID] = {"OBJECT_ID", NULL, 0},
    [F_EPOCH] = {"EPOCH", NULL, 1},
    [F_MM] = {"MEAN_MOTION", "rev/day", 1},
    [F_ECC] = {"ECCENTRICITY", NULL, 1},
    [F_INCL] = {"INCLINATION", "deg", 1},
    [F_RAAN] = {"RA_OF_ASC_NODE", "deg", 1},
    [F_ARGP] = {"ARG_OF_PERICENTER", "deg", 1},
    [F_MA] = {"MEAN_ANOMALY", "deg", 1},
    [F_EPHTYPE] = {"EPHEMERIS_TYPE", NULL, 0},
    [F_CLASS] = {"CLASSIFICATION_TYPE", NULL, 0},
    [F_CATNUM] = {"NORAD_CAT_ID", NULL, 1},
    [F_ELSET] = {"ELEMENT_SET_NO", NULL, 0},
    [F_REV] = {"REV_AT_EPOCH", NULL, 0},
    [F_BSTAR] = {"BSTAR", "1/ER", 1},
    [F_MMDOT] = {"MEAN_MOTION_DOT", "rev/day**2", 0},
    [F_MMDDOT] = {"MEAN_MOTION_DDOT", "rev/day**3", 0},
};

struct omm_set {
    sr_elements el;
    unsigned have; /* bit per field */
};

static int field_index(const char *key, size_t n)
{
    for (int i = 0; i < F_COUNT; i++) {
        if (strlen(fields[i].key) == n && memcmp(fields[i].key, key, n) == 0) {
            return i;
        }
    }
    return -1;
}

/* Strict number: optional sign, digits with at most one '.', optional
 * exponent; no "nan", "inf", hex or blanks inside. */
static int num_strict(double *out, const char *s, size_t n)
{
    char buf[64];
    size_t i = 0;
    if (n == 0 || n >= sizeof buf) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[i] == '+' || buf[i] == '-') {
        i++;
    }
    int digits = 0, dots = 0;
    for (; i < n && buf[i] != 'e' && buf[i] != 'E'; i++) {
        if (isdigit((unsigned char)buf[i])) {
            digits++;
        } else if (buf[i] == '.') {
            dots++;
        } else {
            return -1;
        }
    }
    if (digits == 0 || dots > 1) {
        return -1;
    }
    if (i < n) {
        i++;
        if (i < n && (buf[i] == '+' || buf[i] == '-')) {
            i++;
        }
        if (i == n) {
            return -1;
        }
        for (; i < n; i++) {
            if (!isdigit((unsigned char)buf[i])) {
                return -1;
            }
        }
    }
    char *end;
    *out = strtod(buf, &end);
    return (*end == '\0' && isfinite(*out)) ? 0 : -1;
}

static double epoch_ms_of(int year, double days)
{
    return (double)sr_days_from_civil(year, 1, 1) * 86400000.0 + (days - 1.0) * 86400000.0;
}

/* "YYYY-MM-DDTHH:MM:SS[.f...][Z]" (also YYYY-DDDTHH:MM:SS as CCSDS allows). */
static int parse_epoch(sr_elements *e, const char *s, size_t n)
{
    char buf[48];
    int y, mo = 0, d = 0, doy = 0, h, mi;
    double sec;
    if (n == 0 || n >= sizeof buf) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[n - 1] == 'Z') {
        buf[--n] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)buf[i]) && strchr("-T:.", buf[i]) == NULL) {
            return -1;
        }
    }
    int used = 0;
    if (n >= 19 && buf[4] == '-' && buf[7] == '-' && buf[10] == 'T' && buf[13] == ':' &&
        buf[16] == ':') {
        if (sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6) {
            return -1;
        }
    } else if (n >= 17 && buf[4] == '-' && buf[8] == 'T' && buf[11] == ':' && buf[14] == ':') {
        if (sscanf(buf, "%4d-%3dT%2d:%2d:%lf%n", &y, &doy, &h, &mi, &sec, &used) != 5) {
            return -1;
        }
    } else {
        return -1;
    }
    /* %2d takes "-1" too: hours and minutes are checked from below as well */
    if ((size_t)used != n || y < 1900 || y > 2200 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        !(sec >= 0) || sec >= 61.0) {
        return -1;
    }
    if (doy == 0) {
        static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 ? leap : 0)) {
            return -1;
        }
        doy =
            (int)(sr_days_from_civil(y, (unsigned)mo, (unsigned)d) - sr_days_from_civil(y, 1, 1)) +
            1;
    } else if (doy < 1 || doy > 366) {
        return -1;
    }
    e->epoch_year = y;
    e->epoch_days = doy + (h * 3600.0 + mi * 60.0 + sec) / 86400.0;
    e->epoch_ms = epoch_ms_of(y, e->epoch_days);
    return 0;
}

/* Sets one field from its text. |where| is "line 7" or "object 3" etc. */
static int set_field(struct omm_set *set, int idx, const char *v, size_t n, const char *units,
                     size_t ulen, const char *where, char *err, size_t errlen)
{
    const char *key = fields[idx].key;
    sr_elements *e = &set->el;
    double d = 0;

    /* trim blanks */
    while (n > 0 && isspace((unsigned char)*v)) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1])) {
        n--;
    }
    if (units != NULL && ulen > 0) {
        if (fields[idx].units == NULL || strlen(fields[idx].units) != ulen ||
            memcmp(fields[idx].units, units, ulen) != 0) {
            sr_lm_err(err, errlen, "OMM %s: %s: wrong units [%.*s] (expected %s)", where, key,
                      (int)(ulen > 32 ? 32 : ulen), units,
                      fields[idx].units ? fields[idx].units : "none");
            return SR_ERR_ELEM_FORMAT;
        }
    }
    if (set->have & (1u << idx)) {
        sr_lm_err(err, errlen, "OMM %s: %s: given twice", where, key);
        return SR_ERR_ELEM_FORMAT;
    }
    set->have |= 1u << idx;

    switch (idx) {
    case F_NAME:
    case F_ID: {
        char *dst = idx == F_NAME ? e->name : e->intldes;
        size_t cap = idx == F_NAME ? sizeof e->name : sizeof e->intldes;
        if (n >= cap) {
            n = cap - 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (!isprint((unsigned char)v[i])) {
                sr_lm_err(err, errlen, "OMM %s: %s: control character", where, key);
                return SR_ERR_ELEM_FORMAT;
            }
        }
        memcpy(dst, v, n);
        dst[n] = '\0';
        return 0;
    }
    case F_EPOCH:
        if (parse_epoch(e, v, n) != 0) {
            sr_lm_err(err, errlen, "OMM %s: EPOCH \"%.*s\" is not YYYY-MM-DDTHH:MM:SS[.ffffff]",
                      where, (int)(n > 40 ? 40 : n), v);
            return SR_ERR_ELEM_FORMAT;
        }
        return 0;
    case F_CLASS:
        if (n != 1 || !isalpha((unsigned char)v[0])) {
            sr_lm_err(err, errlen, "OMM %s: CLASSIFICATION_TYPE is not one letter", where);
            return SR_ERR_ELEM_FORMAT;
        }
        e->classification = v[0];
        return 0;
    default:
        break;
    }
    if (num_strict(&d, v, n) != 0) {
        sr_lm_err(err, errlen, "OMM %s: %s \"%.*s\" is not a finite number", where, key,
                  (int)(n > 40 ? 40 : n), v);
        return SR_ERR_ELEM_FORMAT;
    }
    switch (idx) {
    case F_MM:
        if (!(d > 0.0) || d > 100.0) {
            sr_lm_err(err, errlen, "OMM %s: MEAN_MOTION %g outside (0, 100] rev/day", where, d);
            return SR_ERR_ELEM_FORMAT;
        }
        e->mean_motion = d;
        break;
    case F_ECC:
        if (!(d >= 0.0 && d < 1.0)) {
            sr_lm_err(err, errlen, "OMM %s: ECCENTRICITY %g outside [0, 1)", where, d);
            return SR_ERR_ELEM_FORMAT;
        }
        e->ecc = d;
        break;
    case F_INCL:
        if (!(d >= 0.0 && d <= 180.0)) {
            sr_lm_err(err, errlen, "OMM %s: INCLINATION %g outside [0, 180] deg", where, d);
            return SR_ERR_ELEM_FORMAT;
        }
        e->incl_deg = d;
        break;
    case F_RAAN:
    case F_ARGP:
    case F_MA:
        if (!(d >= 0.0 && d <= 360.0)) {
            sr_lm_err(err, errlen, "OMM %s: %s %g outside [0, 360] deg", where, key, d);
            return SR_ERR_ELEM_FORMAT;
        }
        if (idx == F_RAAN) {
            e->raan_deg = d;
        } else if (idx == F_ARGP) {
            e->argp_deg = d;
        } else {
            e->mean_anom_deg = d;
        }
        break;
    case F_EPHTYPE:
    case F_ELSET:
    case F_REV:
    case F_CATNUM:
        if (d < 0 || d != floor(d) || d > 999999999.0) {
            sr_lm_err(err, errlen, "OMM %s: %s %g is not a non-negative integer", where, key, d);
            return SR_ERR_ELEM_FORMAT;
        }
        if (idx == F_EPHTYPE) {
            e->ephemeris_type = (int)d;
        } else if (idx == F_ELSET) {
            e->elset_num = (int)d;
        } else if (idx == F_REV) {
            e->rev_num = (int64_t)d;
        } else {
            e->catnum = (uint32_t)d;
        }
        break;
    case F_BSTAR:
        if (fabs(d) > 10.0) {
            sr_lm_err(err, errlen, "OMM %s: BSTAR %g is implausible (|B*| > 10 /ER)", where, d);
            return SR_ERR_ELEM_FORMAT;
        }
        e->bstar = d;
        break;
    case F_MMDOT:
        e->ndot = d;
        break;
    case F_MMDDOT:
        e->nddot = d;
        break;
    default:
        break;
    }
    return 0;
}

static int finish_set(struct omm_set *set, const char *where, char *err, size_t errlen)
{
    for (int i = 0; i < F_COUNT; i++) {
        if (fields[i].required && !(set->have & (1u << i))) {
            sr_lm_err(err, errlen, "OMM %s: %s missing", where, fields[i].key);
            return SR_ERR_ELEM_FORMAT;
        }
    }
    if (!(set->have & (1u << F_CLASS))) {
        set->el.classification = 'U';
    }
    return 0;
}

/* A growing output array with a ceiling. */
struct set_list {
    sr_elements *v;
    size_t n, cap, max;
};

static int list_push(struct set_list *l, const sr_elements *e, char *err, size_t errlen)
{
    if (l->n >= l->max) {
        sr_lm_err(err, errlen, "more than %zu element sets", l->max);
        return SR_ERR_TOOBIG;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        sr_elements *nv = realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL) {
            return SR_ERR_NOMEM;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *e;
    return 0;
}

static int list_done(struct set_list *l, int rc, sr_elements **out, size_t *n, char *err,
                     size_t errlen)
{
    if (rc == 0 && l->n == 0) {
        sr_lm_err(err, errlen, "no element sets found");
        rc = SR_ERR_ELEM_FORMAT;
    }
    if (rc == SR_ERR_NOMEM) {
        sr_lm_err(err, errlen, "out of memory after %zu element sets", l->n);
    }
    if (rc != 0) {
        free(l->v);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = l->v;
    *n = l->n;
    return 0;
}

static void list_init(struct set_list *l, size_t max_sets)
{
    memset(l, 0, sizeof(*l));
    l->max = max_sets ? max_sets : MAX_SETS_DEFAULT;
}

/* ---- JSON ---------------------------------------------------------------------- */

/* Line on which the |k|-th element (0-based) of the top-level array starts,
 * or the line of the top-level value itself when |text| is not an array:
 * jansson does not keep positions, so messages get them from this scan of the
 * already-validated text. */
static size_t json_elem_line(const char *text, size_t len, size_t k)
{
    size_t line = 1, idx = 0;
    int depth = 0, in_str = 0, esc = 0, seen_value = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n') {
            line++;
        }
        if (in_str) {
            if (esc) {
                esc = 0;
            } else if (c == '\\') {
                esc = 1;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (depth == 0 && c == '{') {
            return line; /* a single object */
        }
        if (c == '"') {
            in_str = 1;
        }
        if (depth == 1 && !seen_value && c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
            c != ',' && c != ']') {
            if (idx == k) {
                return line;
            }
            seen_value = 1;
        }
        if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',' && depth == 1) {
            seen_value = 0;
            idx++;
        }
    }
    return line;
}

static int json_one(struct set_list *l, json_t *obj, size_t k, size_t line, char *err,
                    size_t errlen)
{
    char where[48];
    struct omm_set set;
    memset(&set, 0, sizeof set);
    snprintf(where, sizeof where, "JSON object %zu (line %zu)", k + 1, line);
    if (!json_is_object(obj)) {
        sr_lm_err(err, errlen, "OMM %s: not a JSON object", where);
        return SR_ERR_ELEM_FORMAT;
    }
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        int idx = field_index(key, strlen(key));
        if (idx < 0) {
            continue;
        }
        char nb[64];
        const char *txt;
        size_t tlen;
        if (json_is_string(val)) {
            txt = json_string_value(val);
            tlen = json_string_length(val);
        } else if (json_is_integer(val)) {
            snprintf(nb, sizeof nb, "%" JSON_INTEGER_FORMAT, json_integer_value(val));
            txt = nb;
            tlen = strlen(nb);
        } else if (json_is_real(val)) {
            snprintf(nb, sizeof nb, "%.17g", json_real_value(val));
            txt = nb;
            tlen = strlen(nb);
        } else if (json_is_null(val) && !fields[idx].required) {
            continue;
        } else {
            sr_lm_err(err, errlen, "OMM %s: %s is neither a number nor a string", where, key);
            return SR_ERR_ELEM_FORMAT;
        }
        int rc = set_field(&set, idx, txt, tlen, NULL, 0, where, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = finish_set(&set, where, err, errlen);
    if (rc != 0) {
        return rc;
    }
    return list_push(l, &set.el, err, errlen);
}

int sr_omm_parse_json(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                      char *err, size_t errlen)
{
    struct set_list l;
    json_error_t je;
    int rc = 0;
    list_init(&l, max_sets);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        sr_lm_err(err, errlen, "OMM JSON line %d column %d: %s", je.line, je.column, je.text);
        return list_done(&l, SR_ERR_ELEM_FORMAT, out, n, err, errlen);
    }
    if (json_is_array(root)) {
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v)
        {
            rc = json_one(&l, v, i, json_elem_line(text, len, i), err, errlen);
            if (rc != 0) {
                break;
            }
        }
    } else {
        rc = json_one(&l, root, 0, json_elem_line(text, len, 0), err, errlen);
    }
    json_decref(root);
    return list_done(&l, rc, out, n, err, errlen);
}

/* ---- CSV ----------------------------------------------------------------------- */

/* Splits one CSV record (RFC 4180 quoting) starting at |*pp|; fills up to
 * |maxf| (start, len) pairs into |fs|; unquotes in place into |scratch|.
 * Returns the number of fields or -1. */
#define CSV_MAX_FIELDS 64
struct csv_field {
    const char *p;
    size_t n;
};

static int csv_record(const char **pp, const char *end, struct csv_field *fs, char *scratch,
                      size_t scap)
{
    const char *p = *pp;
    int nf = 0;
    size_t so = 0;
    for (;;) {
        if (nf >= CSV_MAX_FIELDS) {
            return -1;
        }
        if (p < end && *p == '"') {
            p++;
            size_t start = so;
            for (;;) {
                if (p >= end) {
                    return -1;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        if (so >= scap) {
                            return -1;
                        }
                        scratch[so++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (so >= scap) {
                    return -1;
                }
                scratch[so++] = *p++;
            }
            fs[nf].p = scratch + start;
            fs[nf].n = so - start;
            nf++;
        } else {
            const char *s = p;
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                if (*p == '"') {
                    return -1;
                }
                p++;
            }
            fs[nf].p = s;
            fs[nf].n = (size_t)(p - s);
            nf++;
        }
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '\r') {
            p++;
        }
        if (p < end && *p == '\n') {
            p++;
        } else if (p < end) {
            return -1;
        }
        break;
    }
    *pp = p;
    return nf;
}

int sr_omm_parse_csv(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen)
{
    struct set_list l;
    struct csv_field hdr[CSV_MAX_FIELDS], row[CSV_MAX_FIELDS];
    int col_idx[CSV_MAX_FIELDS];
    char hscratch[2048], rscratch[4096];
    const char *p = text, *end = text + len;
    int rc = 0;
    size_t lineno = 1;

    list_init(&l, max_sets);
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF) {
        p += 3;
    }
    int nh = csv_record(&p, end, hdr, hscratch, sizeof hscratch);
    if (nh <= 0) {
        sr_lm_err(err, errlen, "OMM CSV line 1: malformed header row");
        return list_done(&l, SR_ERR_ELEM_FORMAT, out, n, err, errlen);
    }
    unsigned seen = 0;
    for (int i = 0; i < nh; i++) {
        col_idx[i] = field_index(hdr[i].p, hdr[i].n);
        if (col_idx[i] >= 0) {
            if (seen & (1u << col_idx[i])) {
                sr_lm_err(err, errlen, "OMM CSV line 1: column %s given twice",
                          fields[col_idx[i]].key);
                return list_done(&l, SR_ERR_ELEM_FORMAT, out, n, err, errlen);
            }
            seen |= 1u << col_idx[i];
        }
    }
    while (p < end) {
        lineno++;
        /* skip blank lines */
        if (*p == '\n' || *p == '\r') {
            while (p < end && (*p == '\n' || *p == '\r')) {
                p++;
            }
            continue;
        }
        char where[32];
        snprintf(where, sizeof where, "CSV line %zu", lineno);
        int nf = csv_record(&p, end, row, rscratch, sizeof rscratch);
        if (nf < 0) {
            sr_lm_err(err, errlen, "OMM %s: malformed record", where);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        if (nf != nh) {
            sr_lm_err(err, errlen, "OMM %s: %d fields, header has %d", where, nf, nh);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        struct omm_set set;
        memset(&set, 0, sizeof set);
        for (int i = 0; i < nf && rc == 0; i++) {
            if (col_idx[i] < 0) {
                continue;
            }
            if (row[i].n == 0 && !fields[col_idx[i]].required) {
                continue;
            }
            rc = set_field(&set, col_idx[i], row[i].p, row[i].n, NULL, 0, where, err, errlen);
        }
        if (rc == 0) {
            rc = finish_set(&set, where, err, errlen);
        }
        if (rc == 0) {
            rc = list_push(&l, &set.el, err, errlen);
        }
        if (rc != 0) {
            break;
        }
    }
    return list_done(&l, rc, out, n, err, errlen);
}

/* ---- KVN ----------------------------------------------------------------------- */

int sr_omm_parse_kvn(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen)
{
    struct set_list l;
    struct omm_set set;
    int in_set = 0, rc = 0;
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    char where[32];

    list_init(&l, max_sets);
    memset(&set, 0, sizeof set);
    while (p < end && rc == 0) {
        const char *ls = p;
        while (p < end && *p != '\n') {
            p++;
        }
        const char *le = p;
        if (p < end) {
            p++;
        }
        lineno++;
        snprintf(where, sizeof where, "KVN line %zu", lineno);
        while (ls < le && isspace((unsigned char)*ls)) {
            ls++;
        }
        while (le > ls && isspace((unsigned char)le[-1])) {
            le--;
        }
        if (ls == le || (le - ls >= 7 && memcmp(ls, "COMMENT", 7) == 0)) {
            continue;
        }
        const char *eq = memchr(ls, '=', (size_t)(le - ls));
        if (eq == NULL) {
            sr_lm_err(err, errlen, "OMM %s: expected KEY = VALUE", where);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        const char *ke = eq;
        while (ke > ls && isspace((unsigned char)ke[-1])) {
            ke--;
        }
        const char *vs = eq + 1, *ve = le;
        const char *units = NULL;
        size_t ulen = 0;
        if (ve > vs && ve[-1] == ']') {
            const char *ob = ve - 1;
            while (ob > vs && *ob != '[') {
                ob--;
            }
            if (*ob != '[') {
                sr_lm_err(err, errlen, "OMM %s: unbalanced units bracket", where);
                rc = SR_ERR_ELEM_FORMAT;
                break;
            }
            units = ob + 1;
            ulen = (size_t)(ve - 1 - units);
            ve = ob;
        }
        size_t klen = (size_t)(ke - ls);
        if (klen == 14 && memcmp(ls, "CCSDS_OMM_VERS", 14) == 0) {
            if (in_set) {
                rc = finish_set(&set, where, err, errlen);
                if (rc == 0) {
                    rc = list_push(&l, &set.el, err, errlen);
                }
                memset(&set, 0, sizeof set);
            }
            in_set = 1;
            continue;
        }
        if (!in_set) {
            sr_lm_err(err, errlen, "OMM %s: expected CCSDS_OMM_VERS first", where);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        int idx = field_index(ls, klen);
        if (idx < 0) {
            continue; /* other CCSDS keywords: CREATION_DATE, REF_FRAME, ... */
        }
        rc = set_field(&set, idx, vs, (size_t)(ve - vs), units, ulen, where, err, errlen);
    }
    if (rc == 0 && in_set) {
        rc = finish_set(&set, where, err, errlen);
        if (rc == 0) {
            rc = list_push(&l, &set.el, err, errlen);
        }
    }
    return list_done(&l, rc, out, n, err, errlen);
}

/* ---- XML ----------------------------------------------------------------------- */

#define XML_MAX_DEPTH 16
#define XML_MAX_NAME 64
#define XML_MAX_TEXT 256

struct xml {
    const char *p, *end;
    size_t line;
    char *err;
    size_t errlen;
};

static int xml_fail(struct xml *x, const char *what)
{
    sr_lm_err(x->err, x->errlen, "OMM XML line %zu: %s", x->line, what);
    return SR_ERR_ELEM_FORMAT;
}

static void xml_adv(struct xml *x)
{
    if (*x->p == '\n') {
        x->line++;
    }
    x->p++;
}

static int xml_skip_until(struct xml *x, const char *s)
{
    size_t n = strlen(s);
    while (x->p + n <= x->end) {
        if (memcmp(x->p, s, n) == 0) {
            x->p += n;
            return 0;
        }
        xml_adv(x);
    }
    return -1;
}

static int is_name_ch(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':';
}

/* Decodes text [s, e) with entities into out (bounded). */
static int xml_text(struct xml *x, const char *s, const char *e, char *out, size_t cap,
                    size_t *olen)
{
    size_t o = 0;
    while (s < e) {
        char c = *s;
        if (c == '&') {
            static const struct {
                const char *ent;
                char c;
            } ents[] = {
                {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
            size_t k;
            for (k = 0; k < 5; k++) {
                size_t el = strlen(ents[k].ent);
                if ((size_t)(e - s) >= el && memcmp(s, ents[k].ent, el) == 0) {
                    c = ents[k].c;
                    s += el;
                    break;
                }
            }
            if (k == 5) {
                return xml_fail(x, "unknown entity");
            }
        } else {
            s++;
        }
        if (o + 1 >= cap) {
            return xml_fail(x, "element text too long");
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *olen = o;
    return 0;
}

int sr_omm_parse_xml(sr_elements **out, size_t *n, const char *text, size_t len, size_t max_sets,
                     char *err, size_t errlen)
{
    struct set_list l;
    struct xml x = {text, text + len, 1, err, errlen};
    char stack[XML_MAX_DEPTH][XML_MAX_NAME];
    int depth = 0, rc = 0, in_omm = 0, had_child = 0;
    const char *text_start = NULL;
    char units[32];
    size_t ulen = 0;
    struct omm_set set;
    size_t nomm = 0;

    list_init(&l, max_sets);
    memset(&set, 0, sizeof set);
    while (x.p < x.end && rc == 0) {
        if (*x.p != '<') {
            if (depth == 0 && !isspace((unsigned char)*x.p)) {
                rc = xml_fail(&x, "text outside the root element");
                break;
            }
            xml_adv(&x);
            continue;
        }
        const char *lt = x.p;
        if (x.end - x.p >= 4 && memcmp(x.p, "<!--", 4) == 0) {
            if (xml_skip_until(&x, "-->") != 0) {
                rc = xml_fail(&x, "unterminated comment");
            }
            continue;
        }
        if (x.end - x.p >= 2 && x.p[1] == '?') {
            if (xml_skip_until(&x, "?>") != 0) {
                rc = xml_fail(&x, "unterminated processing instruction");
            }
            continue;
        }
        if (x.end - x.p >= 2 && x.p[1] == '!') {
            rc = xml_fail(&x, "DTDs and CDATA are not supported");
            break;
        }
        int closing = 0;
        x.p++;
        if (x.p < x.end && *x.p == '/') {
            closing = 1;
            x.p++;
        }
        const char *ns = x.p;
        while (x.p < x.end && is_name_ch(*x.p)) {
            x.p++;
        }
        size_t nlen = (size_t)(x.p - ns);
        if (nlen == 0 || nlen >= XML_MAX_NAME) {
            rc = xml_fail(&x, "bad element name");
            break;
        }
        /* attributes */
        int selfclose = 0;
        ulen = 0;
        for (;;) {
            while (x.p < x.end && isspace((unsigned char)*x.p)) {
                xml_adv(&x);
            }
            if (x.p >= x.end) {
                rc = xml_fail(&x, "unterminated tag");
                break;
            }
            if (*x.p == '>') {
                x.p++;
                break;
            }
            if (*x.p == '/' && x.p + 1 < x.end && x.p[1] == '>' && !closing) {
                selfclose = 1;
                x.p += 2;
                break;
            }
            if (closing) {
                rc = xml_fail(&x, "attributes in a closing tag");
                break;
            }
            const char *as = x.p;
            while (x.p < x.end && is_name_ch(*x.p)) {
                x.p++;
            }
            size_t alen = (size_t)(x.p - as);
            if (alen == 0 || x.p >= x.end || *x.p != '=') {
                rc = xml_fail(&x, "malformed attribute");
                break;
            }
            x.p++;
            if (x.p >= x.end || (*x.p != '"' && *x.p != '\'')) {
                rc = xml_fail(&x, "attribute value not quoted");
                break;
            }
            char q = *x.p++;
            const char *vs = x.p;
            while (x.p < x.end && *x.p != q && *x.p != '<') {
                xml_adv(&x);
            }
            if (x.p >= x.end || *x.p != q) {
                rc = xml_fail(&x, "unterminated attribute value");
                break;
            }
            if (alen == 5 && memcmp(as, "units", 5) == 0) {
                size_t vl = (size_t)(x.p - vs);
                if (vl >= sizeof units) {
                    rc = xml_fail(&x, "units attribute too long");
                    break;
                }
                memcpy(units, vs, vl);
                ulen = vl;
            }
            x.p++;
        }
        if (rc != 0) {
            break;
        }
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != nlen ||
                memcmp(stack[depth - 1], ns, nlen) != 0) {
                rc = xml_fail(&x, "closing tag does not match the open element");
                break;
            }
            depth--;
            if (nlen == 3 && memcmp(ns, "omm", 3) == 0) {
                char where[32];
                snprintf(where, sizeof where, "XML omm %zu", nomm);
                rc = finish_set(&set, where, err, errlen);
                if (rc == 0) {
                    rc = list_push(&l, &set.el, err, errlen);
                }
                memset(&set, 0, sizeof set);
                in_omm = 0;
            } else if (!had_child && in_omm && text_start != NULL) {
                int idx = field_index(ns, nlen);
                if (idx >= 0) {
                    char tbuf[XML_MAX_TEXT], where[32];
                    size_t tl;
                    rc = xml_text(&x, text_start, lt, tbuf, sizeof tbuf, &tl);
                    snprintf(where, sizeof where, "XML line %zu", x.line);
                    if (rc == 0) {
                        rc = set_field(&set, idx, tbuf, tl, NULL, 0, where, err, errlen);
                    }
                }
            }
            had_child = 1;
            text_start = NULL;
            continue;
        }
        /* opening tag */
        if (selfclose) {
            had_child = 1;
            continue;
        }
        if (depth >= XML_MAX_DEPTH) {
            rc = xml_fail(&x, "elements nested too deeply");
            break;
        }
        memcpy(stack[depth], ns, nlen);
        stack[depth][nlen] = '\0';
        depth++;
        if (nlen == 3 && memcmp(ns, "omm", 3) == 0) {
            if (in_omm) {
                rc = xml_fail(&x, "omm inside omm");
                break;
            }
            in_omm = 1;
            nomm++;
        }
        /* remember units of a leaf for the check at its end */
        if (in_omm && ulen > 0) {
            int idx = field_index(ns, nlen);
            if (idx >= 0 && (fields[idx].units == NULL || strlen(fields[idx].units) != ulen ||
                             memcmp(fields[idx].units, units, ulen) != 0)) {
                char msg[96];
                snprintf(msg, sizeof msg, "%s: wrong units \"%.*s\" (expected %s)", fields[idx].key,
                         (int)ulen, units, fields[idx].units ? fields[idx].units : "none");
                rc = xml_fail(&x, msg);
                break;
            }
        }
        had_child = 0;
        text_start = x.p;
    }
    if (rc == 0 && depth != 0) {
        rc = xml_fail(&x, "document ends inside an element");
    }
    return list_done(&l, rc, out, n, err, errlen);
}

/* ---- TLE text and auto-detection --------------------------------------------- */

static int parse_tle_text(sr_elements **out, size_t *n, const char *text, size_t len,
                          size_t max_sets, unsigned flags, char *err, size_t errlen)
{
    struct set_list l;
    char lines[3][160];
    size_t linenos[3] = {0, 0, 0};
    int have = 0; /* lines buffered: name? line1? */
    int rc = 0;
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    char suberr[200];

    list_init(&l, max_sets);
    /* Collect logical lines; a set is [name] "1 ..." "2 ...". */
    int state = 0; /* 0 expect name or 1, 1 have name expect 1, 2 have 1 expect 2 */
    int has_name = 0;
    while (p < end && rc == 0) {
        const char *ls = p;
        while (p < end && *p != '\n') {
            p++;
        }
        size_t ll = (size_t)(p - ls);
        if (p < end) {
            p++;
        }
        lineno++;
        while (ll > 0 && (ls[ll - 1] == '\r' || ls[ll - 1] == ' ' || ls[ll - 1] == '\t')) {
            ll--;
        }
        if (ll == 0 || ls[0] == '#') {
            continue;
        }
        if (ll >= sizeof lines[0]) {
            sr_lm_err(err, errlen, "TLE text line %zu: longer than %zu characters", lineno,
                      sizeof lines[0] - 1);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        if (memchr(ls, '\0', ll) != NULL) {
            sr_lm_err(err, errlen, "TLE text line %zu: NUL byte", lineno);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        int is1 = ll >= 2 && ls[0] == '1' && ls[1] == ' ';
        int is2 = ll >= 2 && ls[0] == '2' && ls[1] == ' ';
        if (state == 2) {
            if (!is2) {
                sr_lm_err(err, errlen, "TLE text line %zu: expected line 2 of the set", lineno);
                rc = SR_ERR_ELEM_FORMAT;
                break;
            }
            memcpy(lines[2], ls, ll);
            lines[2][ll] = '\0';
            linenos[2] = lineno;
            sr_elements e;
            rc = sr_tle_parse(&e, has_name ? lines[0] : NULL, lines[1], lines[2], flags, suberr,
                              sizeof suberr);
            if (rc != 0) {
                sr_lm_err(err, errlen, "text line %zu: %s",
                          strstr(suberr, "line 1") ? linenos[1] : linenos[2], suberr);
                break;
            }
            rc = list_push(&l, &e, err, errlen);
            state = 0;
            has_name = 0;
            have = 0;
            continue;
        }
        if (is1) {
            memcpy(lines[1], ls, ll);
            lines[1][ll] = '\0';
            linenos[1] = lineno;
            state = 2;
            continue;
        }
        if (is2 || state == 1) {
            sr_lm_err(err, errlen, "TLE text line %zu: expected line 1 of a set", lineno);
            rc = SR_ERR_ELEM_FORMAT;
            break;
        }
        memcpy(lines[0], ls, ll);
        lines[0][ll] = '\0';
        linenos[0] = lineno;
        has_name = 1;
        state = 1;
        have++;
    }
    (void)have;
    if (rc == 0 && state != 0) {
        sr_lm_err(err, errlen, "TLE text: ends inside a set (after line %zu)", lineno);
        rc = SR_ERR_ELEM_FORMAT;
    }
    return list_done(&l, rc, out, n, err, errlen);
}

int sr_elements_parse_text(sr_elements **out, size_t *n, const char *text, size_t len,
                           size_t max_sets, unsigned flags, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF) {
        p += 3;
    }
    while (p < end && isspace((unsigned char)*p)) {
        p++;
    }
    *out = NULL;
    *n = 0;
    if (p == end) {
        sr_lm_err(err, errlen, "no element sets found (empty input)");
        return SR_ERR_ELEM_FORMAT;
    }
    size_t rest = (size_t)(end - p);
    if (*p == '[' || *p == '{') {
        return sr_omm_parse_json(out, n, p, rest, max_sets, err, errlen);
    }
    if (*p == '<') {
        return sr_omm_parse_xml(out, n, p, rest, max_sets, err, errlen);
    }
    /* first line */
    const char *nl = memchr(p, '\n', rest);
    size_t fl = nl ? (size_t)(nl - p) : rest;
    if (fl >= 14 && memcmp(p, "CCSDS_OMM_VERS", 14) == 0) {
        return sr_omm_parse_kvn(out, n, p, rest, max_sets, err, errlen);
    }
    if (memchr(p, ',', fl) != NULL) {
        for (size_t i = 0; i + 12 <= fl; i++) {
            if (memcmp(p + i, "NORAD_CAT_ID", 12) == 0 || memcmp(p + i, "OBJECT_NAME", 11) == 0) {
                return sr_omm_parse_csv(out, n, p, rest, max_sets, err, errlen);
            }
        }
    }
    return parse_tle_text(out, n, p, rest, max_sets, flags, err, errlen);
}

/* ---- OMM JSON output ------------------------------------------------------------ */

int sr_omm_format_json(sr_buf *b, const sr_elements *e)
{
    char epoch[40];
    double ms = e->epoch_ms;
    int64_t whole = (int64_t)floor(ms / 1000.0);
    double frac_us = (ms - (double)whole * 1000.0) * 1000.0; /* microseconds */
    int64_t us = (int64_t)llround(frac_us);
    if (us >= 1000000) {
        whole++;
        us -= 1000000;
    }
    char iso[SR_RFC3339_LEN];
    if (sr_time_format(iso, whole * 1000) < 0) {
        return SR_ERR_RANGE;
    }
    /* iso = YYYY-MM-DDTHH:MM:SS.000Z -> drop ".000Z" */
    snprintf(epoch, sizeof epoch, "%.19s.%06lld", iso, (long long)us);
    int rc = sr_buf_appendf(b, "{\"OBJECT_NAME\":");
    if (rc == 0) {
        rc = sr_buf_append_json_str(b, e->name, strlen(e->name));
    }
    if (rc == 0) {
        rc = sr_buf_appendf(b, ",\"OBJECT_ID\":");
    }
    if (rc == 0) {
        rc = sr_buf_append_json_str(b, e->intldes, strlen(e->intldes));
    }
    if (rc == 0) {
        rc = sr_buf_appendf(
            b,
            ",\"EPOCH\":\"%s\",\"MEAN_MOTION\":%.8f,\"ECCENTRICITY\":%.7f,\"INCLINATION\":%.4f,"
            "\"RA_OF_ASC_NODE\":%.4f,\"ARG_OF_PERICENTER\":%.4f,\"MEAN_ANOMALY\":%.4f,"
            "\"EPHEMERIS_TYPE\":%d,\"CLASSIFICATION_TYPE\":\"%c\",\"NORAD_CAT_ID\":%u,"
            "\"ELEMENT_SET_NO\":%d,\"REV_AT_EPOCH\":%lld,\"BSTAR\":%.5g,\"MEAN_MOTION_DOT\":%.8g,"
            "\"MEAN_MOTION_DDOT\":%.5g}",
            epoch, e->mean_motion, e->ecc, e->incl_deg, e->raan_deg, e->argp_deg, e->mean_anom_deg,
            e->ephemeris_type, e->classification ? e->classification : 'U', e->catnum, e->elset_num,
            (long long)e->rev_num, e->bstar, e->ndot, e->nddot);
    }
    return rc;
}
