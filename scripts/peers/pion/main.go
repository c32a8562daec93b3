// A DTLS 1.2 client on pion/dtls (an independent implementation), for the tests and the benchmark:
// handshakes per second (full PSK, full ECDHE-ECDSA, resumed) and CoAP requests per second over
// established sessions, against any DTLS CoAP server. Prints one JSON object.
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
)

type memoryStore struct {
	mu       sync.Mutex
	sessions map[string]dtls.Session
}

func (s *memoryStore) Set(key []byte, session dtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[string(key)] = session
	return nil
}

func (s *memoryStore) Get(key []byte) (dtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[string(key)], nil
}

func (s *memoryStore) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, string(key))
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5684", "server address")
	mode := flag.String("mode", "handshake", "handshake | requests | echo")
	suite := flag.String("suite", "psk", "psk | ecdsa")
	resume := flag.Bool("resume", false, "resume one session for every handshake after the first")
	identity := flag.String("identity", "bench", "PSK identity")
	key := flag.String("key", "62656e63682d6b6579", "PSK key (hex)")
	cert := flag.String("cert", "", "client certificate (PEM), for ecdsa")
	certKey := flag.String("certkey", "", "client key (PEM), for ecdsa")
	duration := flag.Duration("duration", 3*time.Second, "how long to measure")
	workers := flag.Int("workers", 8, "handshakes in parallel")
	sessions := flag.Int("sessions", 64, "sessions for requests, each with one request in flight")
	path := flag.String("path", "bench", "Uri-Path of the requests")
	message := flag.String("message", "hello from pion", "what echo mode sends")
	dialTimeout := flag.Duration("dial-timeout", 2*time.Second, "a handshake not done by then counts as failed")
	flag.Parse()

	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		fail(err)
	}
	psk, err := hex.DecodeString(*key)
	if err != nil {
		fail(err)
	}
	store := &memoryStore{sessions: map[string]dtls.Session{}}
	config := func() *dtls.Config {
		c := &dtls.Config{ExtendedMasterSecret: dtls.RequestExtendedMasterSecret, InsecureSkipVerify: true, ServerName: "bench"}
		if *suite == "psk" {
			c.PSK = func([]byte) ([]byte, error) { return psk, nil }
			c.PSKIdentityHint = []byte(*identity)
			c.CipherSuites = []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8}
		} else {
			pair, err := tls.LoadX509KeyPair(*cert, *certKey)
			if err != nil {
				fail(err)
			}
			c.Certificates = []tls.Certificate{pair}
			c.CipherSuites = []dtls.CipherSuiteID{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8}
		}
		if *resume {
			c.SessionStore = store
		}
		return c
	}
	dial := func() (*dtls.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), *dialTimeout)
		defer cancel()
		return dtls.DialWithContext(ctx, "udp", raddr, config())
	}
	out := json.NewEncoder(os.Stdout)

	switch *mode {
	case "echo":
		conn, err := dial()
		if err != nil {
			fail(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(*message)); err != nil {
			fail(err)
		}
		buffer := make([]byte, 2048)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buffer)
		if err != nil {
			fail(err)
		}
		out.Encode(map[string]interface{}{"answer": string(buffer[:n])})

	case "handshake":
		if *resume {
			// The first handshake makes the session every later one resumes.
			conn, err := dial()
			if err != nil {
				fail(err)
			}
			conn.Close()
		}
		var done, failed int64
		deadline := time.Now().Add(*duration)
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					conn, err := dial()
					if err != nil {
						atomic.AddInt64(&failed, 1)
						continue
					}
					atomic.AddInt64(&done, 1)
					conn.Close()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		out.Encode(map[string]interface{}{"rate": float64(done) / elapsed, "count": done, "failed": failed})

	case "requests":
		conns := make([]*dtls.Conn, *sessions)
		for i := range conns {
			// A handshake that stalls is tried again (a few times): the measurement is of the sessions, not of their setup.
			var conn *dtls.Conn
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				if conn, err = dial(); err == nil {
					break
				}
			}
			if err != nil {
				fail(err)
			}
			conns[i] = conn
		}
		var done, failed int64
		deadline := time.Now().Add(*duration)
		var wg sync.WaitGroup
		start := time.Now()
		for i, conn := range conns {
			wg.Add(1)
			go func(i int, conn *dtls.Conn) {
				defer wg.Done()
				buffer := make([]byte, 2048)
				id := uint16(i * 1000)
				for time.Now().Before(deadline) {
					id++
					// CON GET with a 2-byte token and one Uri-Path option (RFC 7252 3).
					request := []byte{0x42, 0x01, 0, 0, 0, 0}
					binary.BigEndian.PutUint16(request[2:], id)
					binary.BigEndian.PutUint16(request[4:], id)
					request = append(request, byte(0xb0|len(*path)))
					request = append(request, []byte(*path)...)
					if _, err := conn.Write(request); err != nil {
						atomic.AddInt64(&failed, 1)
						return
					}
					for {
						conn.SetReadDeadline(time.Now().Add(2 * time.Second))
						n, err := conn.Read(buffer)
						if err != nil {
							atomic.AddInt64(&failed, 1)
							break
						}
						if n >= 4 && binary.BigEndian.Uint16(buffer[2:]) == id {
							atomic.AddInt64(&done, 1)
							break
						}
					}
				}
			}(i, conn)
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		for _, conn := range conns {
			conn.Close()
		}
		out.Encode(map[string]interface{}{"rate": float64(done) / elapsed, "count": done, "failed": failed})
	default:
		fail(fmt.Errorf("unknown mode %s", *mode))
	}
}
