/*
 * UTC time <-> RFC 3339. Civil-date arithmetic follows Howard Hinnant's
 * days_from_civil algorithm (public-domain mathematics), which is exact for the
 * proleptic Gregorian calendar and needs no tables or timezone database.
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

int64_t sr_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

int sr_time_format(char out[SR_RFC3339_LEN], int64_t ms)
{
    int64_t days = floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    if (y < 0 || y > 9999) {
        out[0] = '\0';
        return SR_ERR_RANGE;
    }
    unsigned msec = (unsigned)(rem % 1000);
    unsigned sec = (unsigned)(rem / 1000);
    int n = snprintf(out, SR_RFC3339_LEN, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", (int)y, mo, d,
                     sec / 3600, (sec / 60) % 60, sec % 60, msec);
    return n;
}

static int digits(const char *s, size_t n, unsigned *v)
{
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return SR_ERR_PARSE;
        }
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    *v = x;
    return 0;
}

int sr_time_parse(int64_t *ms, const char *s, size_t len)
{
    if (!s) {
        return SR_ERR_INVAL;
    }
    if (len == (size_t)-1) {
        len = strlen(s);
    }
    unsigned y, mo, d, h, mi, se;
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':') {
        return SR_ERR_PARSE;
    }
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se)) {
        return SR_ERR_PARSE;
    }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60) {
        return SR_ERR_RANGE;
    }
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return SR_ERR_RANGE;
    }
    size_t i = 19;
    /* fraction: keep up to 9 digits, round to ms */
    int64_t frac_ns = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100000000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (scale > 0) {
                frac_ns += (s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
        }
        if (i == start) {
            return SR_ERR_PARSE;
        }
    }
    int64_t offset_min = 0;
    if (i < len) {
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
            i++;
        } else if ((s[i] == '+' || s[i] == '-') && i + 6 == len && s[i + 3] == ':') {
            unsigned oh, om;
            if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om)) {
                return SR_ERR_PARSE;
            }
            if (oh > 23 || om > 59) {
                return SR_ERR_RANGE;
            }
            offset_min = (int64_t)(oh * 60 + om) * (s[i] == '+' ? 1 : -1);
            i += 6;
        } else {
            return SR_ERR_PARSE;
        }
    }
    if (i != len) {
        return SR_ERR_PARSE;
    }
    int64_t days = sr_days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
    *ms = secs * 1000 + (frac_ns + 500000) / 1000000;
    return 0;
}
