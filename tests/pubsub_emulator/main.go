// Command pstest runs Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/pstest)
// as a standalone gRPC server so Python tests can point PUBSUB_EMULATOR_HOST at it.
//
// Why a wrapper: pstest 0.56 (Debian bookworm) only offers NewServer(), which binds a
// random port on "localhost". We want a caller-chosen port on 127.0.0.1 (IPv4 only, so
// "localhost" resolving to ::1 cannot bite us), so we register pstest's exported GServer
// on our own grpc.Server. pstest's own random-port listener stays up but is unused.
//
// Usage: pstest -port 8085   (-port 0 = kernel-chosen port; the ready line reports it)
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/pstest"
	pb "google.golang.org/genproto/googleapis/pubsub/v1"
	"google.golang.org/grpc"
)

func main() {
	port := flag.Int("port", 8085, "TCP port on 127.0.0.1 (0 = any free port)")
	flag.Parse()

	fake := pstest.NewServer()
	defer fake.Close()

	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	gsrv := grpc.NewServer()
	pb.RegisterPublisherServer(gsrv, &fake.GServer)
	pb.RegisterSubscriberServer(gsrv, &fake.GServer)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- gsrv.Serve(lis) }()

	// The Python helper parses this exact line; keep the format stable.
	fmt.Printf("listening on %s\n", lis.Addr().String())
	os.Stdout.Sync()

	select {
	case s := <-sigs:
		log.Printf("pstest: got %v, stopping", s)
		gsrv.Stop() // not GracefulStop: open StreamingPull streams would block it
	case err := <-served:
		log.Fatalf("serve: %v", err)
	}
}
