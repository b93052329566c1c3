# Sourced by the measurement scripts in tests/ (rotate.sh,
# rotate_threads.sh): `stats` prints the median, smallest and largest of
# the numbers on stdin, and their count.
stats() {
  sort -g | awk '{ a[NR] = $1 }
    END {
      m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf "%.17g %.17g %.17g %d\n", m, a[1], a[NR], NR
    }'
}
