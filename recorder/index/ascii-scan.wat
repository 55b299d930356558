;; The byte scans of ascii-text.ts, 16 bytes at a time with WebAssembly SIMD: is a payload plain
;; ASCII, and where are its base64 lines (scan); terminal text made plain in place (plain).
;;
;; plain(len): the `len` bytes at address 0, in place, as plainText leaves ASCII text whose only
;; controls are tab, LF and CR: CR LF and a lone CR become LF. Returns the new length, or -1 when a
;; byte is another control, DEL or above 0x7f (escape sequences, UTF-8: the caller's regexes).
;;
;; scan(len, out): the payload is the `len` bytes at address 0, followed by 16 newline bytes the
;; caller writes (so a block is always loaded whole: a run of the alphabet and a search for the
;; next newline both stop there, and a newline is plain). Returns -1
;; when a byte is not plain ASCII (printable, tab or newline), else the number of dropped lines,
;; written at `out` as pairs of i32 [start, end) in order: a line of 60 or more bytes of the base64
;; alphabet holding an upper-case letter, a lower-case letter and a digit, up to two `=`, then its
;; newline (dropped with it) or the end of the payload. The JavaScript scan in ascii-text.ts is the
;; definition; the unit tests hold the two to the same answers.
;;
;; Everything is inline, the constant vectors in locals: V8 does not inline WebAssembly calls, and
;; a call per block made the first version no faster than the JavaScript loop.
;;
;; Rebuild ascii-scan.wasm after editing: npm run build:wasm
(module
  (memory (export "memory") 1)

  (func (export "scan") (param $len i32) (param $out i32) (result i32)
    (local $i i32) (local $p i32) (local $q i32) (local $e i32) (local $m i32) (local $n i32) (local $k i32)
    (local $v v128) (local $u v128) (local $l v128) (local $d v128) (local $keep v128)
    (local $up v128) (local $lo v128) (local $dg v128)
    (local $cA v128) (local $ca v128) (local $c0 v128) (local $c26 v128) (local $c10 v128)
    (local $plus v128) (local $slash v128) (local $space v128) (local $del v128) (local $tab v128) (local $nl v128)
    (local $iota v128) (local $zero v128)
    (local.set $cA (i8x16.splat (i32.const 65)))
    (local.set $ca (i8x16.splat (i32.const 97)))
    (local.set $c0 (i8x16.splat (i32.const 48)))
    (local.set $c26 (i8x16.splat (i32.const 26)))
    (local.set $c10 (i8x16.splat (i32.const 10)))
    (local.set $plus (i8x16.splat (i32.const 43)))
    (local.set $slash (i8x16.splat (i32.const 47)))
    (local.set $space (i8x16.splat (i32.const 0x20)))
    (local.set $del (i8x16.splat (i32.const 0x7f)))
    (local.set $tab (i8x16.splat (i32.const 9)))
    (local.set $nl (i8x16.splat (i32.const 10)))
    (local.set $iota (v128.const i8x16 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15))
    (local.set $zero (v128.const i64x2 0 0))
    ;; Every byte plain (printable, tab, newline), or -1.
    (block $plain
      (loop $blocks
        (br_if $plain (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $v (v128.load (local.get $i)))
        (if (v128.any_true
              (v128.andnot
                (v128.or (i8x16.lt_u (local.get $v) (local.get $space)) (i8x16.ge_u (local.get $v) (local.get $del)))
                (v128.or (i8x16.eq (local.get $v) (local.get $tab)) (i8x16.eq (local.get $v) (local.get $nl)))))
          (then (return (i32.const -1))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $blocks)))
    ;; Line by line; $p is always a line start.
    (block $end
      (loop $lines
        (br_if $end (i32.ge_u (local.get $p) (local.get $len)))
        ;; $q: the first byte at or after $p outside the alphabet (the padding stops it by $len);
        ;; $up, $lo, $dg: the classes seen in [p, q).
        (local.set $q (local.get $p))
        (local.set $up (local.get $zero))
        (local.set $lo (local.get $zero))
        (local.set $dg (local.get $zero))
        (block $run
          (loop $blocks
            (local.set $v (v128.load (local.get $q)))
            (local.set $u (i8x16.lt_u (i8x16.sub (local.get $v) (local.get $cA)) (local.get $c26)))
            (local.set $l (i8x16.lt_u (i8x16.sub (local.get $v) (local.get $ca)) (local.get $c26)))
            (local.set $d (i8x16.lt_u (i8x16.sub (local.get $v) (local.get $c0)) (local.get $c10)))
            (local.set $m (i8x16.bitmask (v128.not
              (v128.or (v128.or (local.get $u) (local.get $l))
                (v128.or (local.get $d) (v128.or (i8x16.eq (local.get $v) (local.get $plus)) (i8x16.eq (local.get $v) (local.get $slash))))))))
            (if (i32.eqz (local.get $m))
              (then
                (local.set $up (v128.or (local.get $up) (local.get $u)))
                (local.set $lo (v128.or (local.get $lo) (local.get $l)))
                (local.set $dg (v128.or (local.get $dg) (local.get $d)))
                (local.set $q (i32.add (local.get $q) (i32.const 16)))
                (br $blocks)))
            ;; The run ends in this block: only its lanes before the end count.
            (local.set $k (i32.ctz (local.get $m)))
            (local.set $keep (i8x16.lt_u (local.get $iota) (i8x16.splat (local.get $k))))
            (local.set $up (v128.or (local.get $up) (v128.and (local.get $u) (local.get $keep))))
            (local.set $lo (v128.or (local.get $lo) (v128.and (local.get $l) (local.get $keep))))
            (local.set $dg (v128.or (local.get $dg) (v128.and (local.get $d) (local.get $keep))))
            (local.set $q (i32.add (local.get $q) (local.get $k)))))
        (if (i32.and
              (i32.ge_u (i32.sub (local.get $q) (local.get $p)) (i32.const 60))
              (i32.and (v128.any_true (local.get $up)) (i32.and (v128.any_true (local.get $lo)) (v128.any_true (local.get $dg)))))
          (then
            ;; Up to two `=`, then the newline or the end: the line is dropped.
            (local.set $e (local.get $q))
            (if (i32.and (i32.lt_u (local.get $e) (local.get $len)) (i32.eq (i32.load8_u (local.get $e)) (i32.const 61)))
              (then
                (local.set $e (i32.add (local.get $e) (i32.const 1)))
                (if (i32.and (i32.lt_u (local.get $e) (local.get $len)) (i32.eq (i32.load8_u (local.get $e)) (i32.const 61)))
                  (then (local.set $e (i32.add (local.get $e) (i32.const 1)))))))
            (if (i32.ge_u (local.get $e) (local.get $len))
              (then (local.set $e (local.get $len)))
              (else
                (if (i32.eq (i32.load8_u (local.get $e)) (i32.const 10))
                  (then (local.set $e (i32.add (local.get $e) (i32.const 1))))
                  (else (local.set $e (i32.const -1))))))
            (if (i32.ge_s (local.get $e) (i32.const 0))
              (then
                (i32.store (local.get $out) (local.get $p))
                (i32.store offset=4 (local.get $out) (local.get $e))
                (local.set $out (i32.add (local.get $out) (i32.const 8)))
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (local.set $p (local.get $e))
                (br $lines)))))
        ;; A line that stays: go on after its newline (the padding has one by $len).
        (local.set $i (local.get $q))
        (block $nl
          (loop $blocks
            (local.set $m (i8x16.bitmask (i8x16.eq (v128.load (local.get $i)) (local.get $nl))))
            (if (local.get $m)
              (then
                (local.set $p (i32.add (i32.add (local.get $i) (i32.ctz (local.get $m))) (i32.const 1)))
                (br $nl)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $blocks)))
        (br $lines)))
    (local.get $n))
  (func (export "plain") (param $len i32) (result i32)
    (local $src i32) (local $dst i32) (local $stop i32) (local $c i32) (local $v v128)
    (local $space v128) (local $del v128) (local $tab v128) (local $nl v128) (local $cr v128)
    (local.set $space (i8x16.splat (i32.const 0x20)))
    (local.set $del (i8x16.splat (i32.const 0x7f)))
    (local.set $tab (i8x16.splat (i32.const 9)))
    (local.set $nl (i8x16.splat (i32.const 10)))
    (local.set $cr (i8x16.splat (i32.const 13)))
    (block $done
      (loop $blocks
        ;; Whole blocks without a CR are moved as they are; the rest byte by byte (up to the
        ;; block's end, or one past it when its last CR's LF is the next block's first byte).
        (local.set $stop (local.get $len))
        (if (i32.le_u (i32.add (local.get $src) (i32.const 16)) (local.get $len))
          (then
            (local.set $v (v128.load (local.get $src)))
            (if (v128.any_true
                  (v128.andnot
                    (v128.or (i8x16.lt_u (local.get $v) (local.get $space)) (i8x16.ge_u (local.get $v) (local.get $del)))
                    (v128.or (v128.or (i8x16.eq (local.get $v) (local.get $tab)) (i8x16.eq (local.get $v) (local.get $nl))) (i8x16.eq (local.get $v) (local.get $cr)))))
              (then (return (i32.const -1))))
            (if (i32.eqz (v128.any_true (i8x16.eq (local.get $v) (local.get $cr))))
              (then
                ;; In place: dst <= src, and the 16 bytes stored were loaded before.
                (v128.store (local.get $dst) (local.get $v))
                (local.set $src (i32.add (local.get $src) (i32.const 16)))
                (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
                (br $blocks)))
            (local.set $stop (i32.add (local.get $src) (i32.const 16)))))
        (br_if $done (i32.ge_u (local.get $src) (local.get $len)))
        (block $bytes
          (loop $byte
            (br_if $bytes (i32.ge_u (local.get $src) (local.get $stop)))
            (local.set $c (i32.load8_u (local.get $src)))
            (if (i32.and
                  (i32.or (i32.lt_u (local.get $c) (i32.const 0x20)) (i32.ge_u (local.get $c) (i32.const 0x7f)))
                  (i32.and (i32.ne (local.get $c) (i32.const 9)) (i32.and (i32.ne (local.get $c) (i32.const 10)) (i32.ne (local.get $c) (i32.const 13)))))
              (then (return (i32.const -1))))
            (local.set $src (i32.add (local.get $src) (i32.const 1)))
            (if (i32.eq (local.get $c) (i32.const 13))
              (then
                (local.set $c (i32.const 10))
                (if (i32.and (i32.lt_u (local.get $src) (local.get $len)) (i32.eq (i32.load8_u (local.get $src)) (i32.const 10)))
                  (then (local.set $src (i32.add (local.get $src) (i32.const 1)))))))
            (i32.store8 (local.get $dst) (local.get $c))
            (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
            (br $byte)))
        (br $blocks)))
    (local.get $dst))
)
